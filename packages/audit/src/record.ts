import { createHash } from 'node:crypto';
import { jcs } from '@keyhold/protocol';
import { AuditFormatError } from './errors.js';

export const AUDIT_KINDS = ['auth', 'attest', 'release', 'deny', 'admin'] as const;
export type AuditKind = (typeof AUDIT_KINDS)[number];

/**
 * What a record may say. An allow-list: there is deliberately no free-form field, so secret
 * values, tokens and evidence cannot end up in the log.
 */
export interface AuditFields {
  /** Outcome: e.g. `affirming`, `allow`, `deny`, `ok`, `error`. */
  readonly verdict?: string;
  /** Node identity (e.g. the AK fingerprint), never the evidence itself. */
  readonly node?: string;
  readonly tee?: string;
  readonly policyId?: string;
  readonly policyVersion?: number;
  /** An error code or a short reason; no values from the request. */
  readonly reason?: string;
  /** `repository/type/tag` (the path, never the secret). */
  readonly resourcePath?: string;
  /** Who did it: admin identity name, or the node for node actions. */
  readonly actor?: string;
  /** What was done, e.g. `resource.put`, `resource-policy.put`, `reference-value.put`. */
  readonly action?: string;
  readonly requestId?: string;
  /** Client network address. */
  readonly client?: string;
}

const STRING_FIELDS = ['verdict', 'node', 'tee', 'policyId', 'reason', 'resourcePath', 'actor', 'action', 'requestId', 'client'] as const;
const ALL_FIELDS: readonly string[] = [...STRING_FIELDS, 'policyVersion'];
export const MAX_AUDIT_FIELD_CHARS = 512;

export interface AuditRecord {
  /** 1 for the first record, +1 for each next one. */
  readonly seq: number;
  /** RFC 3339 UTC time with milliseconds. */
  readonly time: string;
  readonly kind: AuditKind;
  readonly fields: AuditFields;
  /** `hash` of the previous record; GENESIS_HASH for seq 1. */
  readonly prevHash: string;
  /** Lower-case hex SHA-256 of the RFC 8785 canonical JSON of {seq, time, kind, fields, prevHash}. */
  readonly hash: string;
}

export const GENESIS_HASH = '0'.repeat(64);
const HEX64 = /^[0-9a-f]{64}$/;
const TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?Z$/;

/** The record hash (over every field except `hash` itself). */
export function auditRecordHash(r: Omit<AuditRecord, 'hash'>): string {
  return createHash('sha256').update(jcs({ seq: r.seq, time: r.time, kind: r.kind, fields: r.fields, prevHash: r.prevHash })).digest('hex');
}

/**
 * Validate fields a caller wants to log. Unknown keys and over-long values are programmer errors
 * (TypeError): the allow-list is what keeps secrets out of the log.
 */
export function checkAuditFields(fields: AuditFields): AuditFields {
  const out: Record<string, string | number> = {};
  for (const [k, v] of Object.entries(fields)) {
    if (v === undefined) continue;
    if (!ALL_FIELDS.includes(k)) throw new TypeError(`audit field ${k} is not allowed`);
    if (k === 'policyVersion') {
      if (!Number.isSafeInteger(v) || (v as number) < 0) throw new TypeError('audit policyVersion must be a non-negative integer');
    } else if (typeof v !== 'string' || v.length > MAX_AUDIT_FIELD_CHARS) {
      throw new TypeError(`audit field ${k} must be a string of at most ${MAX_AUDIT_FIELD_CHARS} characters`);
    }
    out[k] = v as string | number;
  }
  return out;
}

/** The record that follows `previous` (undefined for the first record of a log). */
export function nextAuditRecord(previous: Pick<AuditRecord, 'seq' | 'hash'> | undefined, kind: AuditKind, fields: AuditFields, time: Date): AuditRecord {
  if (!AUDIT_KINDS.includes(kind)) throw new TypeError(`audit kind ${String(kind)} is not known`);
  const body = {
    seq: previous === undefined ? 1 : previous.seq + 1,
    time: time.toISOString(),
    kind,
    fields: checkAuditFields(fields),
    prevHash: previous === undefined ? GENESIS_HASH : previous.hash,
  };
  return { ...body, hash: auditRecordHash(body) };
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/**
 * Check the shape of an untrusted record (read back from disk or fetched from a KBS) and return
 * it typed. It does not check the hash: that is verifyAuditChain's job.
 */
export function decodeUnverifiedAuditRecord(value: unknown): AuditRecord {
  const bad = (why: string): AuditFormatError => new AuditFormatError('AUDIT_RECORD_INVALID', `audit record ${why}`);
  if (!isRecord(value)) throw bad('is not an object');
  const { seq, time, kind, fields, prevHash, hash } = value;
  if (!Number.isSafeInteger(seq) || (seq as number) < 1) throw bad('has a bad seq');
  if (typeof time !== 'string' || !TIME.test(time)) throw bad('has a bad time');
  if (typeof kind !== 'string' || !(AUDIT_KINDS as readonly string[]).includes(kind)) throw bad('has a bad kind');
  if (typeof prevHash !== 'string' || !HEX64.test(prevHash) || typeof hash !== 'string' || !HEX64.test(hash)) throw bad('has a bad hash');
  if (!isRecord(fields)) throw bad('has bad fields');
  let checked: AuditFields;
  try {
    checked = checkAuditFields(fields as AuditFields);
  } catch {
    throw bad('has bad fields');
  }
  if (Object.keys(value).length !== 6) throw bad('has unknown keys');
  return { seq: seq as number, time, kind: kind as AuditKind, fields: checked, prevHash, hash };
}
