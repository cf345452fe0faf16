import { describe, expect, it } from 'vitest';
import { newSession, sessionIdOf } from './new-session.js';

describe('newSession', () => {
  it('issues distinct 32-hex UUID v4 ids and 32-byte base64 nonces, expiring after the TTL', () => {
    const a = newSession({ tee: 'tpm', hashAlgorithm: 'sha384', ttlMs: 1000, nowMs: 5000 });
    const b = newSession({ tee: 'tpm', hashAlgorithm: 'sha384', ttlMs: 1000, nowMs: 5000, challenge: { x: { y: 1 } } });
    expect(a.id).toMatch(/^[0-9a-f]{12}4[0-9a-f]{3}[89ab][0-9a-f]{15}$/);
    expect(a.id).not.toBe(b.id);
    expect(Buffer.from(a.nonce, 'base64')).toHaveLength(32);
    expect(a.nonce).not.toBe(b.nonce);
    expect(a.expiresAtMs).toBe(6000);
    expect(a).not.toHaveProperty('challenge');
    expect(b.challenge).toEqual({ x: { y: 1 } });
  });
});

describe('sessionIdOf', () => {
  // SECURITY negative test: only our own id format reaches the state backend as a key.
  it('accepts only 32 lowercase hex characters', () => {
    const id = newSession({ tee: 'tpm', hashAlgorithm: 'sha384', ttlMs: 1, nowMs: 0 }).id;
    expect(sessionIdOf(id)).toBe(id);
    for (const bad of [undefined, '', id.toUpperCase(), `${id}0`, id.slice(1), '{kh:sessions}:x', '*', 'a'.repeat(10_000), `${id.slice(0, 31)}g`]) {
      expect(sessionIdOf(bad)).toBeUndefined();
    }
  });
});
