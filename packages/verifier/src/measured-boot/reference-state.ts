import { z } from 'zod';
import { EventLogError } from '../eventlog/errors.js';

/**
 * Measured-boot reference state (JSON, `version: 1`). Every member is optional; each one present
 * adds a check, and a state with none is rejected. Hex is lower-case, without `0x`.
 *
 * ```jsonc
 * {
 *   "version": 1,
 *   // Allowed values per bank and PCR ("any of"); the quoted bank's entry is used.
 *   "pcrs": { "sha256": { "0": ["<hex>"], "7": ["<hex>", "<hex>"] } },
 *   // SecureBoot variable must be 1 (true) or not 1 (false), measured before PCR7's separator.
 *   "secureBoot": true,
 *   // SHA-256 of every certificate (or listed hash) the variable may hold; PK/KEK/db must be measured.
 *   "pk": ["<sha256>"], "kek": ["<sha256>"], "db": ["<sha256>"],
 *   // Entries dbx must contain (revocations that have to be installed).
 *   "dbxRequired": ["<sha256>"],
 *   // Authenticode digests per bank that PCR4 may record (shim, grub, kernel); any other fails.
 *   "bootApplications": { "sha256": ["<hex>"] },
 *   // JavaScript regexes; every kernel command line measured in PCR8 must fully match one.
 *   "kernelCmdline": ["^/vmlinuz-\\S+ root=UUID=[0-9a-f-]+ ro quiet$"]
 * }
 * ```
 */
export interface MeasuredBootReferenceState {
  readonly version: 1;
  readonly pcrs?: Readonly<Partial<Record<'sha1' | 'sha256' | 'sha384' | 'sha512', Readonly<Record<string, readonly string[]>>>>>;
  readonly secureBoot?: boolean;
  readonly pk?: readonly string[];
  readonly kek?: readonly string[];
  readonly db?: readonly string[];
  readonly dbxRequired?: readonly string[];
  readonly bootApplications?: Readonly<Partial<Record<'sha1' | 'sha256' | 'sha384' | 'sha512', readonly string[]>>>;
  readonly kernelCmdline?: readonly string[];
}

const hexString = z.string().regex(/^([0-9a-f]{2})+$/, 'lower-case hex');
const sha256Hex = z.string().regex(/^[0-9a-f]{64}$/, 'SHA-256 hex');
const bankKey = z.enum(['sha1', 'sha256', 'sha384', 'sha512']);
const pcrKey = z.string().regex(/^(?:[0-9]|1[0-9]|2[0-3])$/, 'PCR index 0-23');

const schema = z
  .object({
    version: z.literal(1),
    pcrs: z.partialRecord(bankKey, z.record(pcrKey, z.array(hexString).min(1).max(64))).optional(),
    secureBoot: z.boolean().optional(),
    pk: z.array(sha256Hex).max(4096).optional(),
    kek: z.array(sha256Hex).max(4096).optional(),
    db: z.array(sha256Hex).max(4096).optional(),
    dbxRequired: z.array(sha256Hex).max(100_000).optional(),
    bootApplications: z.partialRecord(bankKey, z.array(hexString).max(4096)).optional(),
    kernelCmdline: z.array(z.string().min(1).max(4096)).max(256).optional(),
  })
  .strict();

/** Validates a reference state (JSON already parsed); throws REFERENCE_STATE_INVALID. */
export function parseMeasuredBootReferenceState(input: unknown): MeasuredBootReferenceState {
  const r = schema.safeParse(input);
  // SECURITY: a malformed reference state must not silently appraise as "no expectations" (fail closed).
  if (!r.success) {
    const first = r.error.issues[0];
    throw new EventLogError('REFERENCE_STATE_INVALID', `reference state invalid at ${first?.path.join('.') ?? '?'}: ${first?.message ?? 'unknown'}`);
  }
  const state = r.data as MeasuredBootReferenceState;
  const { version: _v, ...checks } = state;
  // SECURITY: an empty reference state would accept every boot (fail closed).
  if (Object.values(checks).every((v) => v === undefined)) {
    throw new EventLogError('REFERENCE_STATE_INVALID', 'reference state has no expectations');
  }
  for (const pattern of state.kernelCmdline ?? []) {
    try {
      new RegExp(pattern, 'u');
    } catch (err) {
      throw new EventLogError('REFERENCE_STATE_INVALID', 'reference state kernelCmdline holds an invalid regex', { cause: err });
    }
  }
  return state;
}
