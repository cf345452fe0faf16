import { generateKeyPairSync } from 'node:crypto';
import { FlattenedEncrypt, compactDecrypt, flattenedDecrypt, importJWK } from 'jose';
import { describe, expect, it } from 'vitest';
import { encryptRsaOaep256 } from './jwe-rsa-oaep-256.js';
import { importTeeKey } from './tee-key-import.js';

const compact = (j: { protected: string; encrypted_key: string; iv: string; ciphertext: string; tag: string }) => [j.protected, j.encrypted_key, j.iv, j.ciphertext, j.tag].join('.');

describe('encryptRsaOaep256', () => {
  it.each([2048, 3072])('jose decrypts ours (flattened and compact) with an RSA-%i key, and writes jose’s header', async (bits) => {
    const { publicKey, privateKey } = generateKeyPairSync('rsa', { modulusLength: bits });
    const jwk = { ...publicKey.export({ format: 'jwk' }), alg: 'RSA-OAEP-256' };
    const key = importTeeKey(jwk);
    if (key.kty !== 'RSA') throw new Error('unreachable');
    const secret = Buffer.from('s3cret');
    const jwe = encryptRsaOaep256(secret, key);
    const opts = { keyManagementAlgorithms: ['RSA-OAEP-256'], contentEncryptionAlgorithms: ['A256GCM'] };
    expect(Buffer.from((await flattenedDecrypt(jwe, privateKey, opts)).plaintext).equals(secret)).toBe(true);
    expect(Buffer.from((await compactDecrypt(compact(jwe), privateKey, opts)).plaintext).equals(secret)).toBe(true);
    const theirs = await new FlattenedEncrypt(secret).setProtectedHeader({ alg: 'RSA-OAEP-256', enc: 'A256GCM' }).encrypt(await importJWK(jwk, 'RSA-OAEP-256'));
    expect(jwe.protected).toBe(theirs.protected);
    expect(Buffer.from(jwe.encrypted_key, 'base64url').length).toBe(bits / 8);
  });

  it('refuses a modulus under 2048 bits even when handed one directly', () => {
    const { publicKey } = generateKeyPairSync('rsa', { modulusLength: 1024 });
    expect(() => encryptRsaOaep256(Buffer.from('s'), { kty: 'RSA', alg: 'RSA-OAEP-256', modulusBits: 1024, key: publicKey })).toThrow(TypeError);
  });
});
