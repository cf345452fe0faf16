import { z } from 'zod';
import { EventLogError } from '../eventlog/errors.js';

/**
 * Keylime's runtime policy (keylime/ima/types.py RuntimePolicyType, meta.version 1), so Keylime
 * users can bring their policies. `dm_policy` and `verification-keys` are accepted but not enforced
 * by Keyhold (device-mapper buffers are appraised through `ima-buf`; signatures are not checked).
 */
export interface RuntimePolicy {
  readonly meta: { readonly version: number; readonly generator?: number | undefined; readonly timestamp?: string | undefined };
  readonly release?: number | undefined;
  readonly digests: Readonly<Record<string, readonly string[]>>;
  readonly excludes: readonly string[];
  readonly keyrings: Readonly<Record<string, readonly string[]>>;
  readonly ima: { readonly ignored_keyrings: readonly string[]; readonly log_hash_alg: 'sha1' | 'sha256' | 'sha384' | 'sha512'; readonly dm_policy: unknown };
  readonly 'ima-buf': Readonly<Record<string, readonly string[]>>;
  readonly 'verification-keys': string;
}

/** Hex digits of a digest per algorithm prefix (Keylime's algorithms.Hash). */
const DIGEST_HEX_CHARS: Readonly<Record<string, number>> = { sha1: 40, sha256: 64, sha384: 96, sha512: 128, sm3_256: 64 };
/**
 * A digest: bare hex as Keylime writes it, or prefixed with its algorithm as IMA's ima-ng field and
 * some generators write it (`sha256:<hex>`); stored as bare lowercase hex.
 */
const digest = z
  .string()
  .regex(/^(?:(?:sha1|sha256|sha384|sha512|sm3_256):)?[0-9a-fA-F]+$/, 'hex digest (optionally "sha256:<hex>")')
  // SECURITY: a prefixed digest whose length does not fit its algorithm (truncated, mislabelled) makes
  // the policy invalid rather than an entry that can never — or wrongly — match (fail closed).
  .refine((d) => {
    const i = d.indexOf(':');
    return i < 0 || DIGEST_HEX_CHARS[d.slice(0, i)] === d.length - i - 1;
  }, 'digest length does not match its algorithm prefix')
  .transform((d) => d.slice(d.indexOf(':') + 1).toLowerCase());
const hexList = z.array(digest);
const schema = z.object({
  meta: z.object({ version: z.number().int().min(1), generator: z.number().int().optional(), timestamp: z.string().optional() }),
  release: z.number().int().optional(),
  digests: z.record(z.string(), hexList),
  excludes: z.array(z.string()).default([]),
  keyrings: z.record(z.string(), hexList).default({}),
  ima: z
    .object({
      ignored_keyrings: z.array(z.string()).default([]),
      log_hash_alg: z.enum(['sha1', 'sha256', 'sha384', 'sha512']).default('sha1'),
      dm_policy: z.unknown().optional(),
    })
    .default({ ignored_keyrings: [], log_hash_alg: 'sha1', dm_policy: null }),
  'ima-buf': z.record(z.string(), hexList).default({}),
  'verification-keys': z.string().default(''),
});

/** A policy compiled for fast appraisal. */
export interface CompiledRuntimePolicy {
  readonly policy: RuntimePolicy;
  readonly digests: ReadonlyMap<string, ReadonlySet<string>>;
  readonly keyrings: ReadonlyMap<string, ReadonlySet<string>>;
  readonly imaBuf: ReadonlyMap<string, ReadonlySet<string>>;
  /** Keylime matches excludes with Python `re.match`: anchored at the start only. */
  readonly exclude: RegExp | undefined;
}

/** Validates a Keylime runtime policy (parsed JSON) and compiles it. Throws IMA_POLICY_INVALID. */
export function parseRuntimePolicy(input: unknown): CompiledRuntimePolicy {
  const r = schema.safeParse(input);
  // SECURITY: a malformed policy must fail closed rather than appraise against partial expectations.
  if (!r.success) {
    const first = r.error.issues[0];
    throw new EventLogError('IMA_POLICY_INVALID', `runtime policy invalid at ${first?.path.join('.') ?? '?'}: ${first?.message ?? 'unknown'}`);
  }
  const policy: RuntimePolicy = { ...r.data, ima: { ...r.data.ima, dm_policy: r.data.ima.dm_policy ?? null } };
  let exclude: RegExp | undefined;
  if (policy.excludes.length > 0) {
    try {
      exclude = new RegExp(policy.excludes.map((e) => `^(?:${e})`).join('|'));
    } catch (err) {
      throw new EventLogError('IMA_POLICY_INVALID', 'runtime policy excludes hold an invalid regex', { cause: err });
    }
  }
  const toMap = (rec: Readonly<Record<string, readonly string[]>>): Map<string, Set<string>> =>
    new Map(Object.entries(rec).map(([k, v]) => [k, new Set(v.map((h) => h.toLowerCase()))]));
  return { policy, digests: toMap(policy.digests), keyrings: toMap(policy.keyrings), imaBuf: toMap(policy['ima-buf']), exclude };
}

/** An empty policy skeleton in Keylime's format. */
export function emptyRuntimePolicy(logHashAlg: RuntimePolicy['ima']['log_hash_alg'] = 'sha1'): RuntimePolicy {
  return {
    meta: { version: 1, generator: 0 },
    release: 0,
    digests: {},
    excludes: [],
    keyrings: {},
    ima: { ignored_keyrings: [], log_hash_alg: logHashAlg, dm_policy: null },
    'ima-buf': {},
    'verification-keys': '',
  };
}

/**
 * Converts a legacy Keylime allowlist (`<hex digest>  <path>` per line, `#` comments) and optional
 * exclude regexes into a runtime policy. Throws IMA_POLICY_INVALID naming the line.
 */
export function convertLegacyAllowlist(allowlist: string, excludes: readonly string[] = []): RuntimePolicy {
  const digests: Record<string, string[]> = {};
  const lines = allowlist.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = (lines[i] as string).replace(/\r$/, '');
    if (line.trim() === '' || line.trimStart().startsWith('#')) continue;
    const m = /^([0-9a-fA-F]+)\s+(.+)$/.exec(line);
    // SECURITY: a line that is not `hash  path` is rejected rather than guessed at (fail closed).
    if (m === null || (m[1] as string).length % 2 !== 0) throw new EventLogError('IMA_POLICY_INVALID', `allowlist line ${i + 1} is not "<hex>  <path>"`);
    const path = m[2] as string;
    const list = (digests[path] ??= []);
    const h = (m[1] as string).toLowerCase();
    if (!list.includes(h)) list.push(h);
  }
  return { ...emptyRuntimePolicy(), digests, excludes: [...excludes] };
}
