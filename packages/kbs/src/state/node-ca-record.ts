import { z } from 'zod';
import { StateError } from './errors.js';
import type { StoredNodeCa } from './ports.js';

/** Bound on the stored CA record (a certificate and a wrapped key). */
export const MAX_NODE_CA_CHARS = 64 * 1024;

const schema = z.strictObject({
  certificatePem: z.string().min(1).max(32 * 1024).regex(/^-----BEGIN CERTIFICATE-----/),
  wrappedKey: z.string().min(1).max(16 * 1024).regex(/^[A-Za-z0-9_-]+$/),
  createdAt: z.string().min(1).max(64),
});

/** Validate a CA record to store; returns its JSON. Programmer error → TypeError. */
export function checkNodeCa(ca: StoredNodeCa): string {
  const r = schema.safeParse(ca);
  if (!r.success) throw new TypeError(`node CA record is malformed: ${r.error.issues[0]?.path.join('.') ?? ''}`);
  return JSON.stringify(r.data);
}

/** Decode a stored CA record; STATE_CORRUPT when it does not fit. */
export function decodeStoredNodeCa(json: string): StoredNodeCa {
  // SECURITY: backend data is bounded and schema-checked before use (tampered or damaged store).
  if (json.length > MAX_NODE_CA_CHARS) throw new StateError('STATE_CORRUPT', 'node CA record is too large');
  let parsed: unknown;
  try {
    parsed = JSON.parse(json);
  } catch (cause) {
    throw new StateError('STATE_CORRUPT', 'node CA record is not JSON', { cause });
  }
  const r = schema.safeParse(parsed);
  if (!r.success) throw new StateError('STATE_CORRUPT', 'node CA record does not fit its schema');
  return Object.freeze(r.data);
}
