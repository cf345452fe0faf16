import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { FlattenedEncrypt, decodeProtectedHeader } from 'jose';
import { describe, expect, it } from 'vitest';
import { JWE_ANNOTATION, jweRecipient, jweUnwrap, jweUnwrapper, jweWrap } from './jwe.js';

const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
const rsa2 = generateKeyPairSync('rsa', { modulusLength: 2048 });
const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const opts = Buffer.from(JSON.stringify({ symkey: randomBytes(32).toString('base64') }));
const b64 = (b: Uint8Array): string => Buffer.from(b).toString('base64');

describe('JWE key wrapping as ocicrypt keywrap/jwe does it', () => {
  it('one RSA key: flattened JSON, alg RSA-OAEP and enc A256GCM both protected (go-jose FullSerialize)', async () => {
    const wrapped = await jweWrap(opts, [rsa.publicKey]);
    const jwe = JSON.parse(Buffer.from(wrapped).toString()) as Record<string, unknown>;
    expect(Object.keys(jwe).sort()).toEqual(['ciphertext', 'encrypted_key', 'iv', 'protected', 'tag']);
    expect(decodeProtectedHeader(jwe as { protected: string })).toEqual({ alg: 'RSA-OAEP', enc: 'A256GCM' });
    expect(Buffer.from(await jweUnwrap(wrapped, [rsa.privateKey])).equals(opts)).toBe(true);
  });

  it('several keys (RSA and EC): general JSON, each recipient its own alg; each key unwraps', async () => {
    const wrapped = await jweWrap(opts, [rsa.publicKey, ec.publicKey]);
    const jwe = JSON.parse(Buffer.from(wrapped).toString()) as { recipients: { header: { alg: string } }[] };
    expect(jwe.recipients.map((r) => r.header.alg)).toEqual(['RSA-OAEP', 'ECDH-ES+A256KW']);
    expect(decodeProtectedHeader(jwe as unknown as { protected: string })).toEqual({ enc: 'A256GCM' });
    expect(Buffer.from(await jweUnwrap(wrapped, [ec.privateKey])).equals(opts)).toBe(true);
    expect(Buffer.from(await jweUnwrap(wrapped, [rsa2.privateKey, rsa.privateKey])).equals(opts)).toBe(true);
  });

  it('refuses the wrong private key with JWE_DECRYPT_FAILED', async () => {
    const wrapped = await jweWrap(opts, [rsa.publicKey]);
    await expect(jweUnwrap(wrapped, [rsa2.privateKey])).rejects.toMatchObject({ code: 'JWE_DECRYPT_FAILED' });
  });

  it.each([
    ['RSA-OAEP-256', 'A256GCM'],
    ['RSA-OAEP', 'A128CBC-HS256'],
  ])('refuses algorithms ocicrypt never writes (%s / %s)', async (alg, enc) => {
    const jwe = await new FlattenedEncrypt(opts).setProtectedHeader({ alg, enc }).encrypt(rsa.publicKey);
    await expect(jweUnwrap(Buffer.from(JSON.stringify(jwe)), [rsa.privateKey])).rejects.toMatchObject({ code: 'JWE_DECRYPT_FAILED' });
  });

  it('refuses a modified ciphertext', async () => {
    const jwe = JSON.parse(Buffer.from(await jweWrap(opts, [rsa.publicKey])).toString()) as { ciphertext: string };
    jwe.ciphertext = (jwe.ciphertext.startsWith('A') ? 'B' : 'A') + jwe.ciphertext.slice(1);
    await expect(jweUnwrap(Buffer.from(JSON.stringify(jwe)), [rsa.privateKey])).rejects.toMatchObject({ code: 'JWE_DECRYPT_FAILED' });
  });

  it.each([['not json', Buffer.from('{')], ['array', Buffer.from('[]')], ['huge', Buffer.alloc(300_000, 0x20)]])('refuses a malformed JWE (%s)', async (_n, b) => {
    await expect(jweUnwrap(b, [rsa.privateKey])).rejects.toMatchObject({ code: 'JWE_MALFORMED' });
  });

  it('recipient and unwrapper speak the keys.jwe annotation', async () => {
    const r = jweRecipient([rsa.publicKey]);
    expect(r.scheme).toBe('jwe');
    const value = b64(await r.wrap(opts));
    const unwrap = jweUnwrapper([rsa2.privateKey, rsa.privateKey]);
    // ocicrypt comma-joins several wrapped keys; a bad one first must not stop a good one.
    expect(Buffer.from(await unwrap({ [JWE_ANNOTATION]: `${b64(Buffer.from('{}'))},${value}` })).equals(opts)).toBe(true);
    await expect(unwrap({})).rejects.toMatchObject({ code: 'NO_WRAPPED_KEY' });
    await expect(unwrap({ [JWE_ANNOTATION]: 'not*base64' })).rejects.toMatchObject({ code: 'NO_WRAPPED_KEY' });
  });

  it('rejects private keys as recipients and public keys as unwrappers (programmer errors)', () => {
    expect(() => jweRecipient([rsa.privateKey])).toThrow(TypeError);
    expect(() => jweUnwrapper([rsa.publicKey])).toThrow(TypeError);
    expect(() => jweRecipient([generateKeyPairSync('ed25519').publicKey])).toThrow(TypeError);
  });
});
