import { generateKeyPairSync } from 'node:crypto';
import { decodeProtectedHeader, jwtVerify } from 'jose';
import { describe, expect, it } from 'vitest';
import { AdminKeyError, importAdminKey } from './admin-key.js';
import { decodeUnverifiedJwt, expiryOf } from './decode-unverified.js';
import { mintAdminToken } from './mint-token.js';

function pair(kind: 'ed25519' | 'p256') {
  const p = kind === 'ed25519' ? generateKeyPairSync('ed25519') : generateKeyPairSync('ec', { namedCurve: 'P-256' });
  return { pem: p.privateKey.export({ format: 'pem', type: 'pkcs8' }).toString(), publicKey: p.publicKey };
}

describe('admin tokens minted in the page', () => {
  for (const [kind, alg] of [
    ['ed25519', 'EdDSA'],
    ['p256', 'ES256'],
  ] as const) {
    it(`${kind}: imports the PKCS#8 key non-extractable and mints a JWT the KBS's verifier (jose) accepts`, async () => {
      const { pem, publicKey } = pair(kind);
      const key = await importAdminKey(pem);
      expect(key.alg).toBe(alg);
      expect(key.key.extractable).toBe(false);
      await expect(crypto.subtle.exportKey('pkcs8', key.key)).rejects.toThrow();
      const now = Date.now();
      const { token, exp } = await mintAdminToken(key, { role: 'owner-a', kid: 'alice', sub: 'console' }, { lifetimeS: 300, nowMs: now });
      const { payload } = await jwtVerify(token, publicKey, { algorithms: [alg], requiredClaims: ['exp'] });
      expect(payload).toEqual({ role: 'owner-a', sub: 'console', iat: Math.floor(now / 1000), exp: Math.floor(now / 1000) + 300 });
      expect(exp).toBe(payload.exp);
      expect(decodeProtectedHeader(token)).toEqual({ alg, typ: 'JWT', kid: 'alice' });
      expect(expiryOf(token)).toBe(exp);
    });
  }

  it('a token minted with another key does not verify', async () => {
    const { pem } = pair('ed25519');
    const { publicKey } = pair('ed25519');
    const { token } = await mintAdminToken(await importAdminKey(pem), { role: 'admin' });
    await expect(jwtVerify(token, publicKey)).rejects.toThrow();
  });

  it('refuses keys the KBS would not accept, and malformed PEM', async () => {
    const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ format: 'pem', type: 'pkcs8' }).toString();
    await expect(importAdminKey(rsa)).rejects.toThrow(/Ed25519 or EC P-256/);
    const p384 = generateKeyPairSync('ec', { namedCurve: 'P-384' }).privateKey.export({ format: 'pem', type: 'pkcs8' }).toString();
    await expect(importAdminKey(p384)).rejects.toThrow(/Ed25519 or EC P-256/);
    const sec1 = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ format: 'pem', type: 'sec1' }).toString();
    await expect(importAdminKey(sec1)).rejects.toThrow(AdminKeyError);
    await expect(importAdminKey('-----BEGIN PRIVATE KEY-----\n!!!\n-----END PRIVATE KEY-----')).rejects.toThrow(AdminKeyError);
    await expect(importAdminKey('x'.repeat(20_000))).rejects.toThrow(/too large/);
    const key = await importAdminKey(pair('ed25519').pem);
    await expect(mintAdminToken(key, { role: 'bad role' })).rejects.toThrow(TypeError);
    await expect(mintAdminToken(key, { role: 'admin' }, { lifetimeS: 0 })).rejects.toThrow(TypeError);
  });

  it('decodes a pasted token without trusting it, and refuses malformed ones', () => {
    const b = (o: unknown) => Buffer.from(JSON.stringify(o)).toString('base64url');
    expect(decodeUnverifiedJwt(`${b({ alg: 'EdDSA' })}.${b({ exp: 5, role: 'admin' })}.sig`).payload).toEqual({ exp: 5, role: 'admin' });
    expect(() => expiryOf(`${b({ alg: 'EdDSA' })}.${b({ role: 'admin' })}.sig`)).toThrow(/no exp/);
    for (const bad of ['', 'a.b', 'a.b.c.d', `${b([])}.${b({})}.s`, `x.${b({})}.s`, `${b({})}.%%%.s`]) expect(() => decodeUnverifiedJwt(bad), bad).toThrow();
  });
});
