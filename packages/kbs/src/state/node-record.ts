/**
 * Validation of node records: on write (programmer error → TypeError) and on read from a backend
 * (tampering or damage → STATE_CORRUPT). Unknown fields are kept, so a record written by a newer
 * KBS survives a read-modify-write by an older one.
 */
import { z } from 'zod';
import { StateError } from './errors.js';
import type { NodeRecord, NodeRecordInput } from './ports.js';

/** EK hash (64 hex) or `ak:` + the AK's TPM name in hex. */
const NODE_ID = /^(?:[0-9a-f]{64}|ak:[0-9a-f]{4,260})$/;
/** Bound on one stored record. */
export const MAX_NODE_RECORD_CHARS = 64 * 1024;
export const MAX_NODE_VERSION = Number.MAX_SAFE_INTEGER - 1;

const iso = z.string().max(64);
const verdict = z.looseObject({ status: z.string().min(1).max(64), policy: z.string().max(512).optional(), reason: z.string().max(4096).optional(), at: iso });

const inputSchema = z.looseObject({
  nodeId: z.string().regex(NODE_ID),
  ekHash: z.string().regex(/^[0-9a-f]{64}$/).optional(),
  akName: z.string().regex(/^[0-9a-f]{4,260}$/).nullable(),
  enrolledAt: iso.optional(),
  ekTrust: z.enum(['ca', 'allowlist', 'ca+allowlist']).optional(),
  firstSeenAt: iso,
  lastSeenAt: iso.optional(),
  lastAttestedAt: iso.optional(),
  lastVerdict: verdict.optional(),
  state: z.enum(['active', 'stale', 'banned', 'revoked']),
  banned: z.looseObject({ at: iso, reason: z.string().max(4096) }).optional(),
  revokedAt: iso.optional(),
  certificates: z.array(z.looseObject({ serial: z.string().regex(/^[0-9a-fA-F]{1,128}$/), notAfter: iso })).max(64).optional(),
  staleNotified: iso.optional(),
});

/** True when `nodeId` has the shape of a node id (used for keys and file names). */
export function isNodeId(nodeId: string): boolean {
  return typeof nodeId === 'string' && NODE_ID.test(nodeId);
}

/** Throws TypeError unless `nodeId` is a node id. */
export function checkNodeId(nodeId: string): void {
  // SECURITY: node ids become map keys, journal entries and Redis hash fields; only the two id
  // shapes are accepted (key injection, unbounded keys).
  if (!isNodeId(nodeId)) throw new TypeError('node id must be 64 lowercase hex characters or ak:<hex AK name>');
}

export function checkExpectedVersion(v: number): void {
  if (!Number.isSafeInteger(v) || v < 0 || v > MAX_NODE_VERSION) throw new TypeError('expectedVersion must be a non-negative integer');
}

/**
 * Validate a record to write for `nodeId`: its JSON (without version) and a fresh copy of it
 * (JSON round trip: nothing the caller keeps can change the stored record).
 */
export function checkNodeInput(nodeId: string, next: NodeRecordInput): { json: string; record: NodeRecordInput } {
  checkNodeId(nodeId);
  const r = inputSchema.safeParse(next);
  if (!r.success) throw new TypeError(`node record is malformed: ${r.error.issues[0]?.path.join('.') ?? ''} ${r.error.issues[0]?.message ?? ''}`.trim());
  if (r.data.nodeId !== nodeId) throw new TypeError('node record id does not match its key');
  const { version: _v, ...rest } = r.data as NodeRecordInput & { version?: unknown };
  const json = JSON.stringify(rest);
  if (json.length > MAX_NODE_RECORD_CHARS) throw new TypeError('node record exceeds 64 KiB of JSON');
  return { json, record: JSON.parse(json) as NodeRecordInput };
}

/** A validated record (from `checkNodeInput`) at `version`, frozen. */
export function storedNode(record: NodeRecordInput, version: number): NodeRecord {
  return deepFreeze({ ...record, version });
}

/** Decode a stored record (JSON without version) for `nodeId` at `version`; STATE_CORRUPT when it does not fit. */
export function decodeStoredNode(nodeId: string, json: string, version: number): NodeRecord {
  const corrupt = (why: string, cause?: unknown): StateError => new StateError('STATE_CORRUPT', `node record ${nodeId.slice(0, 80)} is corrupt: ${why}`, { cause });
  // SECURITY: backend data is bounded and schema-checked before use; a record moved under another
  // id (e.g. a clean record copied over a revoked node's key) is refused (tampered store).
  if (json.length > MAX_NODE_RECORD_CHARS) throw corrupt('too large');
  if (!Number.isSafeInteger(version) || version < 1) throw corrupt('bad version');
  let parsed: unknown;
  try {
    parsed = JSON.parse(json);
  } catch (cause) {
    throw corrupt('not JSON', cause);
  }
  const r = inputSchema.safeParse(parsed);
  if (!r.success) throw corrupt('schema');
  if (r.data.nodeId !== nodeId) throw corrupt('stored under another id');
  return deepFreeze({ ...(r.data as unknown as NodeRecordInput), version });
}

/** Freeze a record and everything in it (records are shared, never copied, in the embedded store). */
export function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const v of Object.values(value)) deepFreeze(v);
  }
  return value;
}
