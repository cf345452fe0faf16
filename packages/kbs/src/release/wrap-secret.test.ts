import { generateKeyPairSync } from 'node:crypto';
import { flattenedDecrypt } from 'jose';
import { describe, expect, it } from 'vitest';
import { wrapSecret } from './wrap-secret.js';

const secret = new TextEncoder().encode('s3cret');

function ecPair() {
  const { publicKey, privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  return { jwk: { ...publicKey.export({ format: 'jwk' }), alg: 'ECDH-ES+A256KW' }, privateKey };
}

describe('wrapSecret', () => {
  it('wraps to an EC key with ECDH-ES+A256KW / A256GCM in Trustee’s field set', async () => {
    const { jwk, privateKey } = ecPair();
    const jwe = await wrapSecret(secret, jwk);
    expect(Object.keys(jwe).sort()).toEqual(['ciphertext', 'encrypted_key', 'iv', 'protected', 'tag']);
    const header = JSON.parse(Buffer.from(jwe.protected, 'base64url').toString()) as Record<string, unknown>;
    expect(header).toMatchObject({ alg: 'ECDH-ES+A256KW', enc: 'A256GCM' });
    const { plaintext } = await flattenedDecrypt(jwe, privateKey);
    expect(new TextDecoder().decode(plaintext)).toBe('s3cret');
  });

  it('wraps to an RSA key with RSA-OAEP-256', async () => {
    const { publicKey, privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const jwe = await wrapSecret(secret, publicKey.export({ format: 'jwk' }));
    expect(JSON.parse(Buffer.from(jwe.protected, 'base64url').toString())).toMatchObject({ alg: 'RSA-OAEP-256' });
    expect(new TextDecoder().decode((await flattenedDecrypt(jwe, privateKey)).plaintext)).toBe('s3cret');
  });

  it('refuses RSA1_5, a mismatched alg, a short RSA key, private members and garbage', async () => {
    const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 }).publicKey.export({ format: 'jwk' });
    await expect(wrapSecret(secret, { ...rsa, alg: 'RSA1_5' })).rejects.toMatchObject({ code: 'JWE_FAILED' });
    await expect(wrapSecret(secret, { ...ecPair().jwk, alg: 'RSA-OAEP-256' })).rejects.toMatchObject({ code: 'JWE_FAILED' });
    const small = generateKeyPairSync('rsa', { modulusLength: 1024 }).publicKey.export({ format: 'jwk' });
    await expect(wrapSecret(secret, small)).rejects.toMatchObject({ code: 'JWE_FAILED' });
    const priv = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ format: 'jwk' });
    await expect(wrapSecret(secret, priv)).rejects.toMatchObject({ code: 'JWE_FAILED' });
    await expect(wrapSecret(secret, undefined)).rejects.toMatchObject({ code: 'JWE_FAILED' });
    await expect(wrapSecret(secret, { kty: 'EC', crv: 'P-256', x: 'AAAA', y: 'AAAA' })).rejects.toMatchObject({ code: 'JWE_FAILED' });
  });
});
