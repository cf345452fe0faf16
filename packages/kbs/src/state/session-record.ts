/**
 * What a session is made of in every backend: validation of a new session, the compact encoding
 * of its challenge and attestation, and the byte count the session caps are measured in.
 */
import { BINDING_HASH_ALGORITHMS } from '@keyhold/protocol';
import { KbsError } from '../errors.js';
import type { AttestedSession, NewSession, SessionLimits } from './ports.js';

const SESSION_ID = /^[0-9a-f]{32}$/;
const NONCE = /^[A-Za-z0-9+/]{43}=$/;
const TEE = /^[a-z0-9_-]{1,32}$/;
/** Bound on the JSON of a session's challenge state and of its attestation (each). */
export const MAX_SESSION_PART_CHARS = 64 * 1024;
/** Fixed per-session overhead counted against `maxSessionBytes` (record structure, index entries). */
const SESSION_OVERHEAD_BYTES = 96;

/** Validate the limits once at open (operator error → TypeError). */
export function checkSessionLimits(limits: SessionLimits): SessionLimits {
  if (typeof limits !== 'object' || limits === null) throw new TypeError('sessionLimits is required');
  if (!Number.isSafeInteger(limits.maxSessions) || limits.maxSessions < 1) throw new TypeError('sessionLimits.maxSessions must be a positive integer');
  if (!Number.isSafeInteger(limits.maxSessionBytes) || limits.maxSessionBytes < 1) throw new TypeError('sessionLimits.maxSessionBytes must be a positive integer');
  return Object.freeze({ maxSessions: limits.maxSessions, maxSessionBytes: limits.maxSessionBytes });
}

/** Throws SESSION_MISSING for anything that cannot be one of our session ids. */
export function checkSessionId(id: string): void {
  // SECURITY: only our own id format reaches the store (it becomes a map or Redis key: key
  // injection, unbounded keys); anything else is simply an unknown session.
  if (typeof id !== 'string' || !SESSION_ID.test(id)) throw new KbsError('SESSION_MISSING', 'unknown session');
}

export interface EncodedSession {
  readonly challengeJson: string | undefined;
  readonly bytes: number;
}

/** Validate a new session (programmer error → TypeError) and encode its challenge once. */
export function encodeNewSession(s: NewSession): EncodedSession {
  if (typeof s !== 'object' || s === null) throw new TypeError('session must be an object');
  if (typeof s.id !== 'string' || !SESSION_ID.test(s.id)) throw new TypeError('session id must be 32 lowercase hex characters');
  if (typeof s.tee !== 'string' || !TEE.test(s.tee)) throw new TypeError('session tee must match ^[a-z0-9_-]{1,32}$');
  if (typeof s.nonce !== 'string' || !NONCE.test(s.nonce)) throw new TypeError('session nonce must be standard base64 of 32 bytes');
  if (!(BINDING_HASH_ALGORITHMS as readonly string[]).includes(s.hashAlgorithm)) throw new TypeError('session hashAlgorithm is not supported');
  if (!Number.isSafeInteger(s.expiresAtMs) || s.expiresAtMs < 0) throw new TypeError('session expiresAtMs must be a non-negative integer');
  const challengeJson = s.challenge === undefined ? undefined : JSON.stringify(s.challenge);
  if (challengeJson !== undefined && (typeof s.challenge !== 'object' || s.challenge === null || Array.isArray(s.challenge))) {
    throw new TypeError('session challenge must be a JSON object');
  }
  // SECURITY: per-session memory is bounded (issue 12 item 1: unauthenticated memory exhaustion).
  if (challengeJson !== undefined && challengeJson.length > MAX_SESSION_PART_CHARS) throw new TypeError('session challenge exceeds 64 KiB of JSON');
  return { challengeJson, bytes: SESSION_OVERHEAD_BYTES + s.id.length + s.tee.length + s.nonce.length + (challengeJson?.length ?? 0) };
}

/** Encode an attestation for storage (programmer error → TypeError). */
export function encodeAttestation(a: AttestedSession): string {
  if (typeof a !== 'object' || a === null || typeof a.claims !== 'object' || a.claims === null || typeof a.teePubkey !== 'object' || a.teePubkey === null) {
    throw new TypeError('attestation must carry claims and teePubkey objects');
  }
  const json = JSON.stringify({ claims: a.claims, teePubkey: a.teePubkey });
  if (json.length > MAX_SESSION_PART_CHARS) throw new TypeError('attestation exceeds 64 KiB of JSON');
  return json;
}

export function sessionLimitError(what: 'count' | 'bytes'): KbsError {
  return new KbsError('SESSION_LIMIT', what === 'count' ? 'too many open sessions, retry later' : 'open sessions hold too many bytes, retry later');
}
