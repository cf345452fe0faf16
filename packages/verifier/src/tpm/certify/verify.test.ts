/**
 * verifyTeeKeyCertification on structures built here byte by byte (an RSA "AK" in software signs
 * them), so every check can be hit on its own: each SECURITY check has a negative case. The same
 * function is cross-checked against a real TPM (swtpm, tpm2-tools) in verify.swtpm.test.ts.
 */
import { createHash, generateKeyPairSync, sign, type KeyObject } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { IdentityError } from '../../identity/errors.js';
import { VerifierError } from '../../errors.js';
import { policyPcrDigest } from '../policy-pcr.js';
import { verifyQuote, type VerifiedQuote } from '../quote/verify.js';
import { isVerifiedTeeKey, verifyTeeKeyCertification, type VerifyTeeKeyCertificationInput } from './verify.js';

// ---- Test-side TPM marshalling (independent of the package's decoders).
const u16 = (v: number): Buffer => Buffer.of(v >> 8, v & 0xff);
const u32 = (v: number): Buffer => {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(v >>> 0);
  return b;
};
const u64 = (v: bigint): Buffer => {
  const b = Buffer.alloc(8);
  b.writeBigUInt64BE(v);
  return b;
};
const tpm2b = (b: Uint8Array): Buffer => Buffer.concat([u16(b.length), Buffer.from(b)]);
const sha256 = (...parts: Uint8Array[]): Buffer => {
  const h = createHash('sha256');
  for (const p of parts) h.update(p);
  return h.digest();
};

const ATTR = { fixedTPM: 1 << 1, fixedParent: 1 << 4, sensitiveDataOrigin: 1 << 5, userWithAuth: 1 << 6, restricted: 1 << 16, decrypt: 1 << 17, sign: 1 << 18 };
const TEE_ATTRS = ATTR.fixedTPM | ATTR.fixedParent | ATTR.sensitiveDataOrigin | ATTR.userWithAuth | ATTR.decrypt;
const SEALED_ATTRS = TEE_ATTRS & ~ATTR.userWithAuth;

interface KeyOpts {
  attrs?: number;
  nameAlg?: number;
  authPolicy?: Uint8Array;
  /** RSA scheme bytes (after the symmetric field). */
  rsaScheme?: Buffer;
  eccScheme?: Buffer;
  kdf?: Buffer;
  symmetric?: Buffer;
}

function rsaTpmtPublic(key: KeyObject, o: KeyOpts = {}): Buffer {
  const n = Buffer.from(key.export({ format: 'jwk' }).n as string, 'base64url');
  return Buffer.concat([
    u16(0x0001),
    u16(o.nameAlg ?? 0x000b),
    u32(o.attrs ?? TEE_ATTRS),
    tpm2b(o.authPolicy ?? new Uint8Array(0)),
    o.symmetric ?? u16(0x0010),
    o.rsaScheme ?? Buffer.concat([u16(0x0017), u16(0x000b)]),
    u16(n.length * 8),
    u32(0),
    tpm2b(n),
  ]);
}

function eccTpmtPublic(key: KeyObject, o: KeyOpts = {}): Buffer {
  const jwk = key.export({ format: 'jwk' });
  return Buffer.concat([
    u16(0x0023),
    u16(o.nameAlg ?? 0x000b),
    u32(o.attrs ?? TEE_ATTRS),
    tpm2b(o.authPolicy ?? new Uint8Array(0)),
    o.symmetric ?? u16(0x0010),
    o.eccScheme ?? Buffer.concat([u16(0x0019), u16(0x000b)]),
    u16(0x0003),
    o.kdf ?? u16(0x0010),
    tpm2b(Buffer.from(jwk.x as string, 'base64url')),
    tpm2b(Buffer.from(jwk.y as string, 'base64url')),
  ]);
}

const nameOf = (tpmtPublic: Buffer, alg = 0x000b, hash = 'sha256'): Buffer => Buffer.concat([u16(alg), createHash(hash).update(tpmtPublic).digest()]);

function attestHeader(type: number, extraData: Uint8Array, magic = 0xff544347): Buffer {
  return Buffer.concat([u32(magic), u16(type), tpm2b(Buffer.alloc(34, 0x22)), tpm2b(extraData), u64(1234n), u32(1), u32(0), Buffer.of(1), u64(0x2023n)]);
}

function certifyInfo(name: Uint8Array, extraData: Uint8Array, o: { magic?: number; type?: number } = {}): Buffer {
  return Buffer.concat([attestHeader(o.type ?? 0x8017, extraData, o.magic), tpm2b(name), tpm2b(Buffer.alloc(34, 0x33))]);
}

function rsassa(message: Uint8Array, key: KeyObject): Buffer {
  return Buffer.concat([u16(0x0014), u16(0x000b), tpm2b(sign('sha256', message, key))]);
}

// ---- A software AK, a quote over PCRs 0..23 with some non-zero values, and a tee key.
const ak = generateKeyPairSync('rsa', { modulusLength: 2048 });
const otherAk = generateKeyPairSync('rsa', { modulusLength: 2048 });
const teeRsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
const teeEc = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const REPORT_DATA = sha256(Buffer.from('runtime data'));
const PCRS = new Map<number, Uint8Array>(Array.from({ length: 24 }, (_, i) => [i, i % 3 === 0 ? sha256(Buffer.of(i)) : new Uint8Array(32)]));

function makeQuote(): VerifiedQuote {
  const pcrDigest = sha256(...[...PCRS.values()]);
  const message = Buffer.concat([attestHeader(0x8018, REPORT_DATA), u32(1), u16(0x000b), Buffer.of(3, 0xff, 0xff, 0xff), tpm2b(pcrDigest)]);
  return verifyQuote({
    message,
    signature: rsassa(message, ak.privateKey),
    akPublicKeyDer: ak.publicKey.export({ format: 'der', type: 'spki' }),
    pcrs: { bank: 'sha256', values: PCRS },
    expectedExtraData: REPORT_DATA,
  });
}
const quote = makeQuote();

const jwkOf = (key: KeyObject, alg: string): Record<string, unknown> => ({ ...key.export({ format: 'jwk' }), alg });

function input(o: { tpmt?: Buffer; name?: Buffer; signer?: KeyObject; extraData?: Uint8Array; magic?: number; type?: number; sealedPcrs?: number[]; jwk?: unknown } = {}): VerifyTeeKeyCertificationInput {
  const tpmt = o.tpmt ?? rsaTpmtPublic(teeRsa.publicKey);
  const info = certifyInfo(o.name ?? nameOf(tpmt), o.extraData ?? REPORT_DATA, { ...(o.magic !== undefined ? { magic: o.magic } : {}), ...(o.type !== undefined ? { type: o.type } : {}) });
  return {
    quote,
    tpm2bPublic: tpm2b(tpmt),
    certifyInfo: info,
    signature: rsassa(info, o.signer ?? ak.privateKey),
    expectedExtraData: REPORT_DATA,
    ...(o.sealedPcrs !== undefined ? { sealedPcrs: o.sealedPcrs } : {}),
    teePubkeyJwk: 'jwk' in o ? o.jwk : jwkOf(teeRsa.publicKey, 'RSA-OAEP-256'),
  };
}

function codeOf(fn: () => unknown): string {
  try {
    fn();
    return 'accepted';
  } catch (err) {
    if (err instanceof VerifierError || err instanceof IdentityError) return err.code;
    throw err;
  }
}

/** `CODE: message` of the refusal. */
function refusal(fn: () => unknown): string {
  try {
    fn();
    return 'accepted';
  } catch (err) {
    if (err instanceof VerifierError || err instanceof IdentityError) return `${err.code}: ${err.message}`;
    throw err;
  }
}

const sealedPolicy = (indices: number[], values: ReadonlyMap<number, Uint8Array> = PCRS): Uint8Array =>
  policyPcrDigest({ hashAlg: 'sha256', bank: 'sha256', values: new Map(indices.map((i) => [i, values.get(i) as Uint8Array])) });

describe('verifyTeeKeyCertification: accepted keys', () => {
  it('an unsealed RSA-2048 OAEP key certified by the quote AK', () => {
    const v = verifyTeeKeyCertification(input());
    expect(isVerifiedTeeKey(v)).toBe(true);
    expect(v.type).toBe('rsa');
    expect(v.sealedPcrs).toEqual([]);
    expect(Buffer.from(v.spkiDer)).toEqual(teeRsa.publicKey.export({ format: 'der', type: 'spki' }));
    expect(Buffer.from(v.name)).toEqual(nameOf(rsaTpmtPublic(teeRsa.publicKey)));
  });

  it('an ECC P-256 ECDH key, also with no scheme, and a JWK without alg', () => {
    const tpmt = eccTpmtPublic(teeEc.publicKey);
    expect(verifyTeeKeyCertification(input({ tpmt, jwk: jwkOf(teeEc.publicKey, 'ECDH-ES+A256KW') })).type).toBe('ecc');
    const plain = eccTpmtPublic(teeEc.publicKey, { eccScheme: u16(0x0010) });
    const { alg: _alg, ...noAlg } = jwkOf(teeEc.publicKey, 'x');
    expect(verifyTeeKeyCertification(input({ tpmt: plain, jwk: noAlg })).type).toBe('ecc');
  });

  it('a key sealed to PCRs 0,3,7 of the quote (indices reported ascending)', () => {
    const tpmt = rsaTpmtPublic(teeRsa.publicKey, { attrs: SEALED_ATTRS, authPolicy: sealedPolicy([0, 3, 7]) });
    expect(verifyTeeKeyCertification(input({ tpmt, sealedPcrs: [7, 0, 3] })).sealedPcrs).toEqual([0, 3, 7]);
  });
});

describe('verifyTeeKeyCertification: refusals (one per check)', () => {
  it('CERTIFY_BAD_MAGIC: not TPM-generated', () => {
    expect(codeOf(() => verifyTeeKeyCertification(input({ magic: 0xff544346 })))).toBe('CERTIFY_BAD_MAGIC');
  });

  it('CERTIFY_WRONG_TYPE: a quote (or any other attestation) presented as a certification', () => {
    expect(codeOf(() => verifyTeeKeyCertification(input({ type: 0x8018 })))).toBe('CERTIFY_WRONG_TYPE');
  });

  it('CERTIFY_SIGNATURE_INVALID: certified by another AK, or the certification altered', () => {
    expect(codeOf(() => verifyTeeKeyCertification(input({ signer: otherAk.privateKey })))).toBe('CERTIFY_SIGNATURE_INVALID');
    const good = input();
    const info = Buffer.from(good.certifyInfo);
    info[20] = (info[20] as number) ^ 1;
    expect(codeOf(() => verifyTeeKeyCertification({ ...good, certifyInfo: info }))).toBe('CERTIFY_SIGNATURE_INVALID');
    // An ECDSA-shaped signature for the RSA AK.
    const ecdsa = Buffer.concat([u16(0x0018), u16(0x000b), tpm2b(Buffer.alloc(32, 1)), tpm2b(Buffer.alloc(32, 2))]);
    expect(codeOf(() => verifyTeeKeyCertification({ ...good, signature: ecdsa }))).toBe('CERTIFY_SIGNATURE_INVALID');
  });

  it('CERTIFY_EXTRA_DATA_MISMATCH: made for another runtime-data digest', () => {
    expect(codeOf(() => verifyTeeKeyCertification(input({ extraData: sha256(Buffer.from('other')) })))).toBe('CERTIFY_EXTRA_DATA_MISMATCH');
    expect(codeOf(() => verifyTeeKeyCertification(input({ extraData: new Uint8Array(0) })))).toBe('CERTIFY_EXTRA_DATA_MISMATCH');
  });

  it('CERTIFY_NAME_MISMATCH: the certified name is of another key', () => {
    const other = rsaTpmtPublic(generateKeyPairSync('rsa', { modulusLength: 2048 }).publicKey);
    expect(codeOf(() => verifyTeeKeyCertification(input({ name: nameOf(other) })))).toBe('CERTIFY_NAME_MISMATCH');
    // Same key, name computed with another hash than nameAlg.
    const tpmt = rsaTpmtPublic(teeRsa.publicKey);
    expect(codeOf(() => verifyTeeKeyCertification(input({ name: nameOf(tpmt, 0x000c, 'sha384') })))).toBe('CERTIFY_NAME_MISMATCH');
  });

  it('TEE_KEY_ATTRIBUTES_INVALID: sign, restricted, duplicable, imported, not decrypt, SHA-1 name, wrong scheme', () => {
    const cases: [RegExp, Buffer][] = [
      [/is a signing key/, rsaTpmtPublic(teeRsa.publicKey, { attrs: TEE_ATTRS | ATTR.sign, rsaScheme: u16(0x0010) })],
      [/is restricted/, rsaTpmtPublic(teeRsa.publicKey, { attrs: TEE_ATTRS | ATTR.restricted, symmetric: Buffer.concat([u16(0x0006), u16(128), u16(0x0043)]), rsaScheme: u16(0x0010) })],
      [/not fixedTPM/, rsaTpmtPublic(teeRsa.publicKey, { attrs: TEE_ATTRS & ~ATTR.fixedTPM & ~ATTR.fixedParent })],
      [/not fixedParent/, rsaTpmtPublic(teeRsa.publicKey, { attrs: TEE_ATTRS & ~ATTR.fixedParent })],
      [/not generated by the TPM/, rsaTpmtPublic(teeRsa.publicKey, { attrs: TEE_ATTRS & ~ATTR.sensitiveDataOrigin })],
      [/not a decryption key/, rsaTpmtPublic(teeRsa.publicKey, { attrs: TEE_ATTRS & ~ATTR.decrypt })],
      [/nameAlg sha1/, rsaTpmtPublic(teeRsa.publicKey, { nameAlg: 0x0004 })],
      [/not OAEP with SHA-256/, rsaTpmtPublic(teeRsa.publicKey, { rsaScheme: u16(0x0010) })],
      [/not OAEP with SHA-256/, rsaTpmtPublic(teeRsa.publicKey, { rsaScheme: u16(0x0015) })],
      [/not OAEP with SHA-256/, rsaTpmtPublic(teeRsa.publicKey, { rsaScheme: Buffer.concat([u16(0x0017), u16(0x0004)]) })],
      [/scheme ecdsa is not ECDH/, eccTpmtPublic(teeEc.publicKey, { eccScheme: Buffer.concat([u16(0x0018), u16(0x000b)]) })],
      [/KDF scheme/, eccTpmtPublic(teeEc.publicKey, { kdf: Buffer.concat([u16(0x0020), u16(0x000b)]) })],
      [/symmetric algorithm/, eccTpmtPublic(teeEc.publicKey, { symmetric: Buffer.concat([u16(0x0006), u16(128), u16(0x0043)]) })],
    ];
    for (const [reason, tpmt] of cases) {
      const nameAlg = tpmt.readUInt16BE(2);
      const name = nameAlg === 0x0004 ? nameOf(tpmt, 0x0004, 'sha1') : nameOf(tpmt);
      const jwk = tpmt.readUInt16BE(0) === 0x0023 ? jwkOf(teeEc.publicKey, 'ECDH-ES+A256KW') : jwkOf(teeRsa.publicKey, 'RSA-OAEP-256');
      const r = refusal(() => verifyTeeKeyCertification(input({ tpmt, name, jwk })));
      expect(r, String(reason)).toMatch(/^TEE_KEY_ATTRIBUTES_INVALID: /);
      expect(r).toMatch(reason);
    }
    // A sealed key that can still be used with its auth value.
    const bypass = rsaTpmtPublic(teeRsa.publicKey, { attrs: TEE_ATTRS, authPolicy: sealedPolicy([0]) });
    expect(refusal(() => verifyTeeKeyCertification(input({ tpmt: bypass, sealedPcrs: [0] })))).toMatch(/^TEE_KEY_ATTRIBUTES_INVALID: .*userWithAuth/);
  });

  it('TEE_KEY_POLICY_MISMATCH: the policy is not PolicyPCR over the quoted values', () => {
    const changed = new Map(PCRS);
    changed.set(7, sha256(Buffer.from('extended after the quote')));
    const stale = rsaTpmtPublic(teeRsa.publicKey, { attrs: SEALED_ATTRS, authPolicy: sealedPolicy([0, 7], changed) });
    expect(codeOf(() => verifyTeeKeyCertification(input({ tpmt: stale, sealedPcrs: [0, 7] })))).toBe('TEE_KEY_POLICY_MISMATCH');
    const ok = rsaTpmtPublic(teeRsa.publicKey, { attrs: SEALED_ATTRS, authPolicy: sealedPolicy([0, 7]) });
    // Claims other PCRs than the policy covers; claims none; claims an unquoted or repeated one.
    expect(codeOf(() => verifyTeeKeyCertification(input({ tpmt: ok, sealedPcrs: [0] })))).toBe('TEE_KEY_POLICY_MISMATCH');
    expect(codeOf(() => verifyTeeKeyCertification(input({ tpmt: ok })))).toBe('TEE_KEY_POLICY_MISMATCH');
    expect(codeOf(() => verifyTeeKeyCertification(input({ tpmt: ok, sealedPcrs: [0, 7, 24] })))).toBe('TEE_KEY_POLICY_MISMATCH');
    expect(codeOf(() => verifyTeeKeyCertification(input({ tpmt: ok, sealedPcrs: [0, 7, 7] })))).toBe('TEE_KEY_POLICY_MISMATCH');
    expect(codeOf(() => verifyTeeKeyCertification(input({ tpmt: ok, sealedPcrs: [0, 7.5] })))).toBe('TEE_KEY_POLICY_MISMATCH');
  });

  it('TEE_KEY_JWK_MISMATCH: the tee-pubkey is not the certified key', () => {
    const other = generateKeyPairSync('rsa', { modulusLength: 2048 }).publicKey;
    for (const jwk of [
      jwkOf(other, 'RSA-OAEP-256'),
      jwkOf(teeRsa.publicKey, 'RSA1_5'),
      jwkOf(teeEc.publicKey, 'ECDH-ES+A256KW'),
      { ...jwkOf(teeRsa.privateKey, 'RSA-OAEP-256') },
      { kty: 'RSA', n: 'AQAB', e: 'AQAB' },
      'not a jwk',
      undefined,
    ]) {
      expect(codeOf(() => verifyTeeKeyCertification(input({ jwk }))), JSON.stringify(jwk)?.slice(0, 40)).toBe('TEE_KEY_JWK_MISMATCH');
    }
  });

  it('malformed structures: truncated, trailing bytes, oversized sizes', () => {
    const good = input();
    for (const len of [0, 10, good.certifyInfo.length - 1]) {
      expect(codeOf(() => verifyTeeKeyCertification({ ...good, certifyInfo: good.certifyInfo.subarray(0, len) }))).toBe('TPM_TRUNCATED');
    }
    expect(codeOf(() => verifyTeeKeyCertification({ ...good, certifyInfo: Buffer.concat([good.certifyInfo, Buffer.of(0)]) }))).toBe('TPM_TRAILING_BYTES');
    expect(codeOf(() => verifyTeeKeyCertification({ ...good, certifyInfo: new Uint8Array(4096) }))).toBe('TPM_LENGTH_EXCEEDED');
    expect(codeOf(() => verifyTeeKeyCertification({ ...good, tpm2bPublic: good.tpm2bPublic.subarray(0, 40) }))).toBe('TPM_PUBLIC_MALFORMED');
    expect(codeOf(() => verifyTeeKeyCertification({ ...good, signature: good.signature.subarray(0, 8) }))).toBe('TPM_TRUNCATED');
  });

  it('only a quote from verifyQuote is accepted', () => {
    expect(() => verifyTeeKeyCertification({ ...input(), quote: { ...quote } as VerifiedQuote })).toThrow(TypeError);
  });
});

describe('policyPcrDigest', () => {
  it('matches a digest computed by hand (TPM 2.0 Part 3 §23.7)', () => {
    const v0 = PCRS.get(0) as Uint8Array;
    const sel = Buffer.of(0, 0, 0, 1, 0x00, 0x0b, 3, 0x01, 0x00, 0x00);
    const want = sha256(Buffer.alloc(32), u32(0x17f), sel, sha256(v0));
    expect(Buffer.from(sealedPolicy([0]))).toEqual(want);
  });

  it('refuses misuse', () => {
    expect(() => policyPcrDigest({ hashAlg: 'sha256', bank: 'sha256', values: new Map() })).toThrow(TypeError);
    expect(() => policyPcrDigest({ hashAlg: 'sha256', bank: 'sha256', values: new Map([[0, new Uint8Array(20)]]) })).toThrow(TypeError);
    expect(() => policyPcrDigest({ hashAlg: 'sha256', bank: 'sha256', values: new Map([[24, new Uint8Array(32)]]) })).toThrow(TypeError);
  });
});
