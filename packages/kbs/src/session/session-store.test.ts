import { describe, expect, it } from 'vitest';
import { KbsError } from '../errors.js';
import { InMemorySessionStore } from './session-store.js';

const init = { tee: 'tpm', hashAlgorithm: 'sha384' as const, extraParams: {} };

describe('InMemorySessionStore', () => {
  it('issues distinct 32-hex ids and 32-byte base64 nonces', () => {
    const s = new InMemorySessionStore({ ttlMs: 1000, maxSessions: 10 });
    const a = s.create(init);
    const b = s.create(init);
    expect(a.id).toMatch(/^[0-9a-f]{32}$/);
    expect(a.id).not.toBe(b.id);
    expect(Buffer.from(a.nonce, 'base64').length).toBe(32);
    expect(a.nonce).not.toBe(b.nonce);
    s.close();
  });

  it('expires sessions after the TTL and reports missing ones', () => {
    let now = 1_000;
    const s = new InMemorySessionStore({ ttlMs: 500, maxSessions: 10, now: () => now });
    const a = s.create(init);
    expect(s.get(a.id)).toBe(a);
    now += 500;
    expect(() => s.get(a.id)).toThrowError(expect.objectContaining({ code: 'SESSION_EXPIRED' }) as Error);
    expect(() => s.get(a.id)).toThrowError(expect.objectContaining({ code: 'SESSION_MISSING' }) as Error);
    expect(() => s.get(undefined)).toThrow(KbsError);
    s.close();
  });

  it('refuses new sessions beyond the limit until old ones expire', () => {
    let now = 0;
    const s = new InMemorySessionStore({ ttlMs: 100, maxSessions: 2, now: () => now });
    s.create(init);
    s.create(init);
    expect(() => s.create(init)).toThrowError(expect.objectContaining({ code: 'SESSION_LIMIT' }) as Error);
    now = 100;
    expect(s.create(init).id).toMatch(/^[0-9a-f]{32}$/);
    s.close();
  });
});
