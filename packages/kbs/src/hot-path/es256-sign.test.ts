import { createPublicKey, generateKeyPairSync } from 'node:crypto';
import { SignJWT, compactVerify, createLocalJWKSet, exportJWK, jwtVerify } from 'jose';
import { describe, expect, it } from 'vitest';
import { Es256CompactSigner } from './es256-sign.js';

const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });

async function header() {
  const jwk = await exportJWK(publicKey);
  return { alg: 'ES256', typ: 'JWT', jwk: { kty: jwk.kty!, crv: jwk.crv!, x: jwk.x!, y: jwk.y!, alg: 'ES256' }, kid: 'kid-1' };
}

describe('Es256CompactSigner', () => {
  it('makes tokens jose verifies against a JWKS, byte-equal to SignJWT’s header and payload', async () => {
    const h = await header();
    const signer = new Es256CompactSigner(privateKey, h);
    const claims = { eat_profile: 'p', submods: { cpu0: { 'ear.status': 'affirming', n: [1, 2] } }, 'ünïcode': 'é✓' };
    const ours = signer.sign({ ...claims, iat: 1000, exp: 1060, iss: 'kbs' });
    const theirs = await new SignJWT(claims).setProtectedHeader(h).setIssuedAt(1000).setExpirationTime(1060).setIssuer('kbs').sign(privateKey);
    // Same header and payload bytes; ECDSA signatures differ (random k) but both verify.
    expect(ours.split('.').slice(0, 2)).toEqual(theirs.split('.').slice(0, 2));
    const jwks = createLocalJWKSet({ keys: [{ ...(await exportJWK(publicKey)), kid: 'kid-1', alg: 'ES256', use: 'sig' }] });
    const { payload, protectedHeader } = await jwtVerify(ours, jwks, { algorithms: ['ES256'], issuer: 'kbs', currentDate: new Date(1_030_000) });
    expect(payload).toEqual({ ...claims, iat: 1000, exp: 1060, iss: 'kbs' });
    expect(protectedHeader).toEqual(h);
    expect(Buffer.from(ours.split('.')[2]!, 'base64url').length).toBe(64);
    await compactVerify(theirs, publicKey);
  });

  it('produces a signature that breaks when header or payload change', async () => {
    const signer = new Es256CompactSigner(privateKey, await header());
    const [h, p, s] = signer.sign({ a: 1 }).split('.') as [string, string, string];
    const otherPayload = Buffer.from('{"a":2}').toString('base64url');
    await expect(compactVerify(`${h}.${otherPayload}.${s}`, publicKey)).rejects.toThrow();
    await expect(compactVerify(`${h}.${p}.${s}`, publicKey)).resolves.toBeDefined();
  });

  it('refuses keys other than a P-256 private key and headers other than ES256 (programmer errors)', async () => {
    const h = await header();
    expect(() => new Es256CompactSigner(generateKeyPairSync('ec', { namedCurve: 'P-384' }).privateKey, h)).toThrow(TypeError);
    expect(() => new Es256CompactSigner(createPublicKey(privateKey), h)).toThrow(TypeError);
    expect(() => new Es256CompactSigner(generateKeyPairSync('ed25519').privateKey, h)).toThrow(TypeError);
    expect(() => new Es256CompactSigner(privateKey, { ...h, alg: 'ES384' })).toThrow(TypeError);
    expect(() => new Es256CompactSigner(privateKey, { ...h, crit: ['b64'], b64: false })).toThrow(TypeError);
  });
});
