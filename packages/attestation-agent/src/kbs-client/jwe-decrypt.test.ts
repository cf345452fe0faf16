/**
 * decryptFlattenedJwe against jose (the reference): what jose's FlattenedEncrypt produces for
 * RSA-OAEP-256, ECDH-ES+A256KW and ECDH-ES (with apu/apv and aad) decrypts here when the private-key
 * step is done by node:crypto, and every malformed or tampered variant is refused.
 */
import { constants, createECDH, generateKeyPairSync, privateDecrypt, type KeyObject } from 'node:crypto';
import { FlattenedEncrypt } from 'jose';
import { describe, expect, it } from 'vitest';
import type { ResourceResponse } from '@keyhold/protocol';
import { jweRefusal } from './jwe-refusal.test-support.js';
import { decryptFlattenedJwe, type JweKeyAgreement } from './jwe-decrypt.js';
import { concatKdf } from './concat-kdf.js';

const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const SECRET = new TextEncoder().encode('a secret released into the TPM');

/** The node:crypto private-key steps a TPM performs for real. */
const rsaOps = (key: KeyObject = rsa.privateKey): JweKeyAgreement => ({
  kind: 'rsa-oaep-256',
  modulusBytes: 256,
  decryptKey: async (c) => new Uint8Array(privateDecrypt({ key, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: 'sha256' }, c)),
});
const ecOps = (key: KeyObject = ec.privateKey): JweKeyAgreement => ({
  kind: 'ecdh-es',
  crv: 'P-256',
  sharedSecret: async (epk) => {
    const ecdh = createECDH('prime256v1');
    ecdh.setPrivateKey(Buffer.from(key.export({ format: 'jwk' }).d as string, 'base64url'));
    return new Uint8Array(ecdh.computeSecret(Buffer.concat([Buffer.of(4), epk.x, epk.y])));
  },
});

async function encrypt(alg: string, to: KeyObject, extra: { apu?: Uint8Array; apv?: Uint8Array; aad?: Uint8Array } = {}): Promise<ResourceResponse> {
  const enc = new FlattenedEncrypt(SECRET).setProtectedHeader({ alg, enc: 'A256GCM' });
  if (extra.apu !== undefined || extra.apv !== undefined) enc.setKeyManagementParameters({ ...(extra.apu ? { apu: extra.apu } : {}), ...(extra.apv ? { apv: extra.apv } : {}) });
  if (extra.aad !== undefined) enc.setAdditionalAuthenticatedData(extra.aad);
  const jwe = await enc.encrypt(to);
  return { protected: jwe.protected!, encrypted_key: jwe.encrypted_key ?? '', iv: jwe.iv!, ciphertext: jwe.ciphertext, tag: jwe.tag!, ...(jwe.aad !== undefined ? { aad: jwe.aad } : {}) };
}


const header = (jwe: ResourceResponse): Record<string, unknown> => JSON.parse(Buffer.from(jwe.protected, 'base64url').toString());
const withHeader = (jwe: ResourceResponse, h: Record<string, unknown>): ResourceResponse => ({ ...jwe, protected: Buffer.from(JSON.stringify(h)).toString('base64url') });
const flip = (b64: string, at = 0): string => {
  const b = Buffer.from(b64, 'base64url');
  b[at] = (b[at] as number) ^ 1;
  return b.toString('base64url');
};

describe('decryptFlattenedJwe: what jose encrypts', () => {
  it('RSA-OAEP-256', async () => {
    expect(await decryptFlattenedJwe(await encrypt('RSA-OAEP-256', rsa.publicKey), rsaOps())).toEqual(SECRET);
  });

  it('ECDH-ES+A256KW, with and without apu/apv, and with aad', async () => {
    expect(await decryptFlattenedJwe(await encrypt('ECDH-ES+A256KW', ec.publicKey), ecOps())).toEqual(SECRET);
    const jwe = await encrypt('ECDH-ES+A256KW', ec.publicKey, { apu: Buffer.from('kbs'), apv: Buffer.from('node'), aad: Buffer.from('ctx') });
    expect(await decryptFlattenedJwe(jwe, ecOps())).toEqual(SECRET);
  });

  it('direct ECDH-ES', async () => {
    expect(await decryptFlattenedJwe(await encrypt('ECDH-ES', ec.publicKey, { apu: Buffer.from('a') }), ecOps())).toEqual(SECRET);
  });
});

describe('decryptFlattenedJwe: refusals', () => {
  it('a JWE for another key', async () => {
    const other = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const jwe = await encrypt('RSA-OAEP-256', other.publicKey);
    await expect(decryptFlattenedJwe(jwe, rsaOps())).rejects.toThrow(); // OAEP padding check fails in the key operation
    const ecJwe = await encrypt('ECDH-ES+A256KW', generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey);
    expect(await jweRefusal(decryptFlattenedJwe(ecJwe, ecOps()))).toMatch(/does not unwrap/);
  });

  it('tampered ciphertext, tag, iv, protected header, aad, encrypted_key', async () => {
    const jwe = await encrypt('ECDH-ES+A256KW', ec.publicKey, { aad: Buffer.from('ctx') });
    expect(await jweRefusal(decryptFlattenedJwe({ ...jwe, ciphertext: flip(jwe.ciphertext) }, ecOps()))).toMatch(/tag does not verify/);
    expect(await jweRefusal(decryptFlattenedJwe({ ...jwe, tag: flip(jwe.tag) }, ecOps()))).toMatch(/tag does not verify/);
    expect(await jweRefusal(decryptFlattenedJwe({ ...jwe, iv: flip(jwe.iv) }, ecOps()))).toMatch(/tag does not verify/);
    expect(await jweRefusal(decryptFlattenedJwe({ ...jwe, aad: 'Y3R5' }, ecOps()))).toMatch(/tag does not verify/);
    expect(await jweRefusal(decryptFlattenedJwe({ ...jwe, encrypted_key: flip(jwe.encrypted_key, 5) }, ecOps()))).toMatch(/does not unwrap/);
    const h = header(jwe);
    expect(await jweRefusal(decryptFlattenedJwe(withHeader(jwe, { ...h, kid: 'x' }), ecOps()))).toMatch(/tag does not verify/);
  });

  it('algorithm confusion and unsupported headers', async () => {
    const jwe = await encrypt('RSA-OAEP-256', rsa.publicKey);
    const h = header(jwe);
    expect(await jweRefusal(decryptFlattenedJwe(withHeader(jwe, { ...h, alg: 'RSA1_5' }), rsaOps()))).toMatch(/alg RSA1_5/);
    expect(await jweRefusal(decryptFlattenedJwe(withHeader(jwe, { ...h, alg: 'ECDH-ES+A256KW' }), rsaOps()))).toMatch(/does not fit an RSA-OAEP-256 key/);
    expect(await jweRefusal(decryptFlattenedJwe(jwe, ecOps()))).toMatch(/does not fit an ECDH-ES key/);
    expect(await jweRefusal(decryptFlattenedJwe(withHeader(jwe, { ...h, enc: 'A128GCM' }), rsaOps()))).toMatch(/enc is not A256GCM/);
    expect(await jweRefusal(decryptFlattenedJwe(withHeader(jwe, { ...h, zip: 'DEF' }), rsaOps()))).toMatch(/zip and crit/);
    expect(await jweRefusal(decryptFlattenedJwe(withHeader(jwe, { ...h, crit: ['x'], x: 1 }), rsaOps()))).toMatch(/zip and crit/);
    expect(await jweRefusal(decryptFlattenedJwe({ ...jwe, protected: 'bm90IGpzb24' }, rsaOps()))).toMatch(/not JSON/);
    expect(await jweRefusal(decryptFlattenedJwe({ ...jwe, protected: 'W10' }, rsaOps()))).toMatch(/not an object/);
    expect(await jweRefusal(decryptFlattenedJwe({ ...jwe, protected: 'x'.repeat(5000) }, rsaOps()))).toMatch(/too long/);
  });

  it('wrong lengths and non-canonical base64url', async () => {
    const jwe = await encrypt('RSA-OAEP-256', rsa.publicKey);
    expect(await jweRefusal(decryptFlattenedJwe({ ...jwe, encrypted_key: Buffer.from(jwe.encrypted_key, 'base64url').subarray(0, 255).toString('base64url') }, rsaOps()))).toMatch(/wrong length/);
    expect(await jweRefusal(decryptFlattenedJwe({ ...jwe, iv: 'AAAA' }, rsaOps()))).toMatch(/iv or tag/);
    expect(await jweRefusal(decryptFlattenedJwe({ ...jwe, tag: jwe.tag.slice(0, 16) }, rsaOps()))).toMatch(/iv or tag/);
    expect(await jweRefusal(decryptFlattenedJwe({ ...jwe, iv: `${jwe.iv}=` }, rsaOps()))).toMatch(/not base64url/);
    const ecJwe = await encrypt('ECDH-ES', ec.publicKey);
    expect(await jweRefusal(decryptFlattenedJwe({ ...ecJwe, encrypted_key: 'AAAA' }, ecOps()))).toMatch(/must be empty/);
  });

  it('an epk that is not on the curve, of another curve, or missing', async () => {
    const jwe = await encrypt('ECDH-ES+A256KW', ec.publicKey);
    const h = header(jwe);
    const epk = h['epk'] as Record<string, string>;
    const offCurve = { ...epk, y: flip(epk['y'] as string, 31) };
    let called = false;
    const guarded: JweKeyAgreement = { kind: 'ecdh-es', crv: 'P-256', sharedSecret: async () => ((called = true), new Uint8Array(32)) };
    expect(await jweRefusal(decryptFlattenedJwe(withHeader(jwe, { ...h, epk: offCurve }), guarded))).toMatch(/not a point on the curve/);
    expect(called).toBe(false);
    expect(await jweRefusal(decryptFlattenedJwe(withHeader(jwe, { ...h, epk: { ...epk, crv: 'P-384' } }), ecOps()))).toMatch(/epk is not an EC P-256/);
    const { epk: _drop, ...noEpk } = h;
    expect(await jweRefusal(decryptFlattenedJwe(withHeader(jwe, noEpk), ecOps()))).toMatch(/epk is not/);
  });
});

describe('concatKdf', () => {
  it('matches the RFC 7518 Appendix C example', () => {
    // RFC 7518 Appendix C: Z, alg "A128GCM" (direct), apu "Alice", apv "Bob", 128 bits
    const z = Uint8Array.from([158, 86, 217, 29, 129, 113, 53, 211, 114, 131, 66, 131, 191, 132, 38, 156, 251, 49, 110, 163, 218, 128, 106, 72, 246, 218, 167, 121, 140, 254, 144, 196]);
    const k = concatKdf({ sharedSecret: z, algorithmId: 'A128GCM', keyBits: 128, partyUInfo: Buffer.from('Alice'), partyVInfo: Buffer.from('Bob') });
    expect(Buffer.from(k).toString('base64url')).toBe('VqqN6vgjbSBcIijNcacQGg');
  });
});
