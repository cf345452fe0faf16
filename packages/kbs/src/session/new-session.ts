import { randomBytes } from 'node:crypto';
import type { BindingHashAlgorithm } from '@keyhold/protocol';
import type { NewSession } from '../state/ports.js';

/**
 * A fresh session for `/auth`: a UUID v4 id as 32 hex characters (as Trustee's cookie carries it)
 * and a nonce of 32 random bytes (standard base64). Both come from the CSPRNG, so a session cannot
 * be guessed on any replica.
 */
export function newSession(init: {
  readonly tee: string;
  readonly hashAlgorithm: BindingHashAlgorithm;
  readonly ttlMs: number;
  readonly nowMs: number;
  readonly challenge?: Readonly<Record<string, unknown>>;
}): NewSession {
  const id = randomBytes(16);
  id[6] = (id[6]! & 0x0f) | 0x40;
  id[8] = (id[8]! & 0x3f) | 0x80;
  return {
    id: id.toString('hex'),
    tee: init.tee,
    nonce: randomBytes(32).toString('base64'),
    hashAlgorithm: init.hashAlgorithm,
    expiresAtMs: init.nowMs + init.ttlMs,
    ...(init.challenge !== undefined ? { challenge: init.challenge } : {}),
  };
}

const SESSION_ID = /^[0-9a-f]{32}$/;

/** The session id of a cookie, or undefined when it cannot be one of ours (looked up nowhere). */
export function sessionIdOf(cookie: string | undefined): string | undefined {
  // SECURITY: only our own id format reaches the state backend (key injection, unbounded keys).
  return cookie !== undefined && SESSION_ID.test(cookie) ? cookie : undefined;
}
