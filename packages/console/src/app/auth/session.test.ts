import { generateKeyPairSync } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { importAdminKey } from './admin-key.js';
import { decodeUnverifiedJwt } from './decode-unverified.js';
import { AdminSession } from './session.js';

const b = (o: unknown) => Buffer.from(JSON.stringify(o)).toString('base64url');

describe('AdminSession', () => {
  it('a key session mints a 5-minute token, reuses it, and renews it a minute before expiry', async () => {
    let now = 1_700_000_000_000;
    const key = await importAdminKey(generateKeyPairSync('ed25519').privateKey.export({ format: 'pem', type: 'pkcs8' }).toString());
    const s = AdminSession.withKey(key, { role: 'admin', kid: 'root' }, [], () => now);
    expect(s.kind).toBe('key');
    expect(s.msUntilExpiry()).toBe(Infinity);
    const [t1, t1again] = await Promise.all([s.token(), s.token()]);
    expect(t1again).toBe(t1);
    expect(decodeUnverifiedJwt(t1!).payload).toMatchObject({ role: 'admin', exp: now / 1000 + 300 });
    now += 230_000;
    expect(await s.token()).toBe(t1);
    now += 20_000;
    const t2 = await s.token();
    expect(t2).not.toBe(t1);
    expect(decodeUnverifiedJwt(t2!).payload['exp']).toBe(now / 1000 + 300);
  });

  it('a pasted token session ends at its exp, and refuses an expired or exp-less token', () => {
    let now = 1_700_000_000_000;
    const token = `${b({ alg: 'EdDSA' })}.${b({ role: 'reader', exp: now / 1000 + 10 })}.sig`;
    const s = AdminSession.withToken(`  ${token}\n`, ['a'], () => now);
    expect(s.role).toBe('reader');
    expect(s.repositories).toEqual(['a']);
    expect(s.msUntilExpiry()).toBe(10_000);
    now += 10_000;
    return Promise.all([
      s.token().then((t) => expect(t).toBeUndefined()),
      Promise.resolve().then(() => expect(() => AdminSession.withToken(token, [], () => now)).toThrow(/expired/)),
      Promise.resolve().then(() => expect(() => AdminSession.withToken(`${b({ alg: 'EdDSA' })}.${b({ role: 'x' })}.s`, [])).toThrow(/no exp/)),
    ]);
  });
});
