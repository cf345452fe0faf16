/**
 * Software tee keys (node:crypto) against jose, the reference: what jose encrypts to a key's public
 * JWK (as a KBS does) decrypts, and a JWE for another key or with another algorithm is refused.
 */
import { CompactEncrypt, FlattenedEncrypt, importJWK } from 'jose';
import { describe, expect, it } from 'vitest';
import type { ResourceResponse } from '@keyhold/protocol';
import { jweRefusal } from './jwe-refusal.test-support.js';
import { softwareTeeKeys, type TeeKey } from './tee-key.js';

const SECRET = new TextEncoder().encode('released to a software tee key');

async function encryptTo(key: TeeKey, alg: string): Promise<ResourceResponse> {
  const jwe = await new FlattenedEncrypt(SECRET).setProtectedHeader({ alg, enc: 'A256GCM' }).encrypt(await importJWK({ ...key.publicJwk, alg }, alg));
  return { protected: jwe.protected!, encrypted_key: jwe.encrypted_key ?? '', iv: jwe.iv!, ciphertext: jwe.ciphertext, tag: jwe.tag! };
}


describe('softwareTeeKeys', () => {
  it('ec: a fresh P-256 key per create(); decrypts ECDH-ES+A256KW from jose', async () => {
    const keys = softwareTeeKeys('ec');
    const [a, b] = [await keys.create(), await keys.create()];
    expect(a.publicJwk).toMatchObject({ kty: 'EC', crv: 'P-256', alg: 'ECDH-ES+A256KW' });
    expect(a.publicJwk).not.toEqual(b.publicJwk);
    expect(Buffer.from(await a.decrypt(await encryptTo(a, 'ECDH-ES+A256KW'))).toString()).toBe(Buffer.from(SECRET).toString());
    await jweRefusal(a.decrypt(await encryptTo(b, 'ECDH-ES+A256KW')));
  });

  it('ec: refuses direct ECDH-ES, the algorithm the key does not advertise', async () => {
    const key = await softwareTeeKeys('ec').create();
    expect(await jweRefusal(key.decrypt(await encryptTo(key, 'ECDH-ES')))).toMatch(/ECDH-ES\+A256KW only/);
  });

  it('rsa: RSA-3072 for RSA-OAEP-256 from jose; refuses RSA-OAEP (SHA-1) and a JWE for another key', async () => {
    const keys = softwareTeeKeys('rsa');
    const key = await keys.create();
    expect(key.publicJwk).toMatchObject({ kty: 'RSA', alg: 'RSA-OAEP-256' });
    expect(Buffer.from((key.publicJwk as { n: string }).n, 'base64url').length).toBe(384);
    expect(Buffer.from(await key.decrypt(await encryptTo(key, 'RSA-OAEP-256'))).toString()).toBe(Buffer.from(SECRET).toString());
    expect(await jweRefusal(key.decrypt(await encryptTo(key, 'RSA-OAEP')))).toMatch(/does not fit/);
    await jweRefusal(key.decrypt(await encryptTo(await keys.create(), 'RSA-OAEP-256')));
  });

  it('a compact JWE in flattened members with a tampered tag is refused', async () => {
    const key = await softwareTeeKeys('ec').create();
    const [p, ek, iv, ct, tag] = (await new CompactEncrypt(SECRET).setProtectedHeader({ alg: 'ECDH-ES+A256KW', enc: 'A256GCM' }).encrypt(await importJWK(key.publicJwk, 'ECDH-ES+A256KW'))).split('.') as [string, string, string, string, string];
    const bad = Buffer.from(tag, 'base64url');
    bad[0] = (bad[0] as number) ^ 1;
    await jweRefusal(key.decrypt({ protected: p, encrypted_key: ek, iv, ciphertext: ct, tag: bad.toString('base64url') }));
    expect(Buffer.from(await key.decrypt({ protected: p, encrypted_key: ek, iv, ciphertext: ct, tag })).toString()).toBe(Buffer.from(SECRET).toString());
  });
});
