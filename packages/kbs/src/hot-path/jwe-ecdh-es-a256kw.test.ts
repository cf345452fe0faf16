import { generateKeyPairSync } from 'node:crypto';
import { FlattenedEncrypt, compactDecrypt, flattenedDecrypt, importJWK, type FlattenedJWE } from 'jose';
import { describe, expect, it } from 'vitest';
import { encryptEcdhEsA256kw } from './jwe-ecdh-es-a256kw.js';
import { importTeeKey } from './tee-key-import.js';

const header = (jwe: { protected: string }) => JSON.parse(Buffer.from(jwe.protected, 'base64url').toString()) as Record<string, any>;
const compact = (j: { protected: string; encrypted_key: string; iv: string; ciphertext: string; tag: string }) => [j.protected, j.encrypted_key, j.iv, j.ciphertext, j.tag].join('.');

describe('encryptEcdhEsA256kw', () => {
  it.each(['P-256', 'P-384', 'P-521'] as const)('jose decrypts ours (flattened and compact) on %s', async (crv) => {
    const { publicKey, privateKey } = generateKeyPairSync('ec', { namedCurve: crv });
    const key = importTeeKey({ ...publicKey.export({ format: 'jwk' }), alg: 'ECDH-ES+A256KW' });
    if (key.kty !== 'EC') throw new Error('unreachable');
    for (const size of [0, 1, 31, 4096]) {
      const secret = Buffer.alloc(size, 0x5a);
      const jwe = encryptEcdhEsA256kw(secret, key);
      const opts = { keyManagementAlgorithms: ['ECDH-ES+A256KW'], contentEncryptionAlgorithms: ['A256GCM'] };
      expect(Buffer.from((await flattenedDecrypt(jwe, privateKey, opts)).plaintext).equals(secret)).toBe(true);
      expect(Buffer.from((await compactDecrypt(compact(jwe), privateKey, opts)).plaintext).equals(secret)).toBe(true);
    }
  });

  it('writes the same members, in the same order, as jose’s FlattenedEncrypt', async () => {
    const { publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-384' });
    const jwk = { ...publicKey.export({ format: 'jwk' }), alg: 'ECDH-ES+A256KW' };
    const key = importTeeKey(jwk);
    if (key.kty !== 'EC') throw new Error('unreachable');
    const ours = encryptEcdhEsA256kw(Buffer.from('s'), key);
    const theirs = await new FlattenedEncrypt(Buffer.from('s')).setProtectedHeader({ alg: 'ECDH-ES+A256KW', enc: 'A256GCM' }).encrypt(await importJWK(jwk, 'ECDH-ES+A256KW'));
    expect(Object.keys(ours).sort()).toEqual(Object.keys(theirs).sort());
    const h = header(ours);
    const j = header(theirs as FlattenedJWE & { protected: string });
    expect(Object.keys(h)).toEqual(Object.keys(j));
    expect(Object.keys(h['epk'])).toEqual(Object.keys(j['epk']));
    expect(h).toMatchObject({ alg: 'ECDH-ES+A256KW', enc: 'A256GCM', epk: { kty: 'EC', crv: 'P-384' } });
    expect(Buffer.from(h['epk'].x, 'base64url').length).toBe(48);
    for (const f of ['encrypted_key', 'iv', 'tag'] as const) expect(Buffer.from(ours[f], 'base64url').length).toBe(Buffer.from(theirs[f]!, 'base64url').length);
  });

  it('uses a fresh ephemeral key, CEK and IV each time', () => {
    const { publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const key = importTeeKey(publicKey.export({ format: 'jwk' }));
    if (key.kty !== 'EC') throw new Error('unreachable');
    const a = encryptEcdhEsA256kw(Buffer.from('same'), key);
    const b = encryptEcdhEsA256kw(Buffer.from('same'), key);
    expect(header(a)['epk'].x).not.toBe(header(b)['epk'].x);
    expect(a.encrypted_key).not.toBe(b.encrypted_key);
    expect(a.iv).not.toBe(b.iv);
  });

  it('is bound to the recipient and the header: another key or a changed header does not decrypt', async () => {
    const { publicKey, privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const other = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
    const key = importTeeKey(publicKey.export({ format: 'jwk' }));
    if (key.kty !== 'EC') throw new Error('unreachable');
    const jwe = encryptEcdhEsA256kw(Buffer.from('s3cret'), key);
    expect(new TextDecoder().decode((await flattenedDecrypt(jwe, privateKey)).plaintext)).toBe('s3cret');
    await expect(flattenedDecrypt(jwe, other)).rejects.toThrow();
    // The protected header is the GCM additional data: adding a member breaks the tag.
    const reheadered = { ...jwe, protected: Buffer.from(JSON.stringify({ ...header(jwe), kid: 'x' })).toString('base64url') };
    await expect(flattenedDecrypt(reheadered, privateKey)).rejects.toThrow('decryption operation failed');
  });
});
