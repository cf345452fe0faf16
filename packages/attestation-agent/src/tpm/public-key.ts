import { createHash, createPublicKey, type KeyObject } from 'node:crypto';
import { TpmError } from '../errors.js';
import { TpmReader } from './internal/tpm-bytes.js';
import { TPM_ALG, TPM_ECC_NIST_P256, TPM_ECC_NIST_P384, hashNameOfAlg } from './internal/tpm-alg.js';

/** The fields of a TPMT_PUBLIC that the agent needs (TPM 2.0 Part 2, 12.2.4). */
export interface TpmPublicInfo {
  readonly type: 'rsa' | 'ecc';
  readonly nameAlg: number;
  readonly objectAttributes: number;
  /** Policy digest that authorises the key's use in the USER role by policy (empty: none). */
  readonly authPolicy: Uint8Array;
  /** Signing scheme and its hash (TPM_ALG_NULL when the key has none). */
  readonly scheme: number;
  readonly schemeHash: number;
  /** RSA modulus / exponent, or ECC curve and point. */
  readonly rsa?: { readonly modulus: Uint8Array; readonly exponent: number };
  readonly ecc?: { readonly curve: number; readonly x: Uint8Array; readonly y: Uint8Array };
}

function readSymDef(r: TpmReader): void {
  const alg = r.u16();
  if (alg !== TPM_ALG.NULL) {
    r.u16(); // keyBits
    r.u16(); // mode
  }
}

function readScheme(r: TpmReader): { scheme: number; hash: number } {
  const scheme = r.u16();
  const hash = scheme === TPM_ALG.NULL ? TPM_ALG.NULL : r.u16();
  return { scheme, hash };
}

/**
 * Parse TPM2B_PUBLIC wire bytes (RSA or ECC only). Throws TPM_BAD_RESPONSE when the bytes do not
 * frame exactly one such structure.
 */
export function parseTpm2bPublic(tpm2bPublic: Uint8Array): TpmPublicInfo {
  const outer = new TpmReader(tpm2bPublic, 'TPM2B_PUBLIC');
  const area = outer.tpm2b(4096);
  outer.end();
  return parseTpmtPublic(area);
}

/** Parse TPMT_PUBLIC wire bytes (RSA or ECC). */
export function parseTpmtPublic(area: Uint8Array): TpmPublicInfo {
  const r = new TpmReader(area, 'TPMT_PUBLIC');
  const type = r.u16();
  const nameAlg = r.u16();
  const objectAttributes = r.u32();
  const authPolicy = r.tpm2b(64);
  readSymDef(r);
  const { scheme, hash } = readScheme(r);
  let info: TpmPublicInfo;
  if (type === TPM_ALG.RSA) {
    const keyBits = r.u16();
    const exponent = r.u32() || 65537;
    const modulus = r.tpm2b(512);
    // SECURITY: a modulus whose size disagrees with keyBits is not a key this TPM made (TPM 2.0 Part 2, 12.2.3.5)
    if (modulus.length * 8 !== keyBits) throw new TpmError('TPM_BAD_RESPONSE', 'TPMT_PUBLIC: RSA modulus size mismatch');
    info = { type: 'rsa', nameAlg, objectAttributes, authPolicy, scheme, schemeHash: hash, rsa: { modulus, exponent } };
  } else if (type === TPM_ALG.ECC) {
    const curve = r.u16();
    readScheme(r); // kdf
    const x = r.tpm2b(66);
    const y = r.tpm2b(66);
    info = { type: 'ecc', nameAlg, objectAttributes, authPolicy, scheme, schemeHash: hash, ecc: { curve, x, y } };
  } else {
    // SECURITY: only RSA and ECC keys are understood; anything else is rejected, not guessed at (TPM 2.0 Part 2, 12.2.4)
    throw new TpmError('TPM_BAD_RESPONSE', `TPMT_PUBLIC: unsupported key type 0x${type.toString(16)}`);
  }
  r.end();
  return info;
}

function b64url(b: Uint8Array): string {
  return Buffer.from(b).toString('base64url');
}

function fixedLength(b: Uint8Array, n: number): Uint8Array {
  // SECURITY: a coordinate longer than the curve's field size is not a point on it (SEC 1, 2.3.5)
  if (b.length > n) throw new TpmError('TPM_BAD_RESPONSE', 'TPMT_PUBLIC: ECC coordinate too long');
  const out = new Uint8Array(n);
  out.set(b, n - b.length);
  return out;
}

/** The key of a parsed TPMT_PUBLIC as a node:crypto KeyObject. */
export function tpmPublicKeyObject(info: TpmPublicInfo): KeyObject {
  try {
    if (info.rsa !== undefined) {
      const e = Buffer.alloc(4);
      e.writeUInt32BE(info.rsa.exponent);
      let i = 0;
      while (i < 3 && e[i] === 0) i++;
      return createPublicKey({ key: { kty: 'RSA', n: b64url(info.rsa.modulus), e: b64url(e.subarray(i)) }, format: 'jwk' });
    }
    if (info.ecc !== undefined) {
      const curve = info.ecc.curve;
      const [crv, size] =
        curve === TPM_ECC_NIST_P256 ? ['P-256', 32] : curve === TPM_ECC_NIST_P384 ? ['P-384', 48] : [undefined, 0];
      // SECURITY: only NIST P-256/P-384 points are converted; other curves are rejected (TCG Algorithm Registry 5.1)
      if (crv === undefined) throw new TpmError('TPM_BAD_RESPONSE', 'TPMT_PUBLIC: unsupported ECC curve');
      return createPublicKey({
        key: { kty: 'EC', crv, x: b64url(fixedLength(info.ecc.x, size)), y: b64url(fixedLength(info.ecc.y, size)) },
        format: 'jwk',
      });
    }
  } catch (err) {
    if (err instanceof TpmError) throw err;
    // SECURITY: a point off the curve or a malformed modulus is refused by node:crypto; surface it as a coded error
    throw new TpmError('TPM_BAD_RESPONSE', 'TPMT_PUBLIC: key is not valid', { cause: err });
  }
  throw new TpmError('TPM_BAD_RESPONSE', 'TPMT_PUBLIC: no key');
}

/** DER SubjectPublicKeyInfo of a TPM2B_PUBLIC (what Trustee's `ak_public` carries). */
export function tpm2bPublicToSpkiDer(tpm2bPublic: Uint8Array): Uint8Array {
  const der = tpmPublicKeyObject(parseTpm2bPublic(tpm2bPublic)).export({ type: 'spki', format: 'der' });
  return new Uint8Array(der.buffer, der.byteOffset, der.byteLength);
}

/** TPM Name of an object: nameAlg || H_nameAlg(TPMT_PUBLIC) (TPM 2.0 Part 1, 16). */
export function tpmObjectName(tpm2bPublic: Uint8Array): Uint8Array {
  const outer = new TpmReader(tpm2bPublic, 'TPM2B_PUBLIC');
  const area = outer.tpm2b(4096);
  outer.end();
  const hash = area.length >= 4 ? hashNameOfAlg((area[2]! << 8) | area[3]!) : undefined;
  // SECURITY: a name can only be computed with a known nameAlg; anything else is refused (TPM 2.0 Part 1, 16)
  if (hash === undefined) throw new TpmError('TPM_BAD_RESPONSE', 'TPMT_PUBLIC: unsupported nameAlg');
  const out = new Uint8Array(2 + createHash(hash).digest().length);
  out[0] = area[2]!;
  out[1] = area[3]!;
  out.set(createHash(hash).update(area).digest(), 2);
  return out;
}
