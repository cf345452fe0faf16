/**
 * Conversions between TPM public areas and DER SubjectPublicKeyInfo, and the EK hash
 * (hex SHA-256 of the EK's DER SPKI) that names a node.
 */
import { createHash, createPublicKey, type KeyObject } from 'node:crypto';
import type { TpmPublic } from '../tpm/public.js';
import { IdentityError } from './errors.js';

const JWK_CURVES: Partial<Record<string, { crv: string; size: number }>> = {
  NIST_P256: { crv: 'P-256', size: 32 },
  NIST_P384: { crv: 'P-384', size: 48 },
  NIST_P521: { crv: 'P-521', size: 66 },
};

function leftPad(b: Uint8Array, size: number): Uint8Array {
  if (b.length === size) return b;
  const out = new Uint8Array(size);
  out.set(b, size - b.length);
  return out;
}

function b64url(b: Uint8Array): string {
  return Buffer.from(b).toString('base64url');
}

function uintBytes(v: number): Uint8Array {
  const out: number[] = [];
  let x = v;
  while (x > 0) {
    out.unshift(x & 0xff);
    x = Math.floor(x / 256);
  }
  return Uint8Array.from(out);
}

/** node:crypto KeyObject for a TPM RSA or ECC (P-256/384/521) public area. */
export function tpmPublicToKeyObject(pub: TpmPublic): KeyObject {
  try {
    if (pub.type === 'rsa') {
      return createPublicKey({ key: { kty: 'RSA', n: b64url(pub.unique), e: b64url(uintBytes(pub.parameters.exponent)) }, format: 'jwk' });
    }
    const c = JWK_CURVES[pub.parameters.curve];
    if (c === undefined) throw new IdentityError('TPM_PUBLIC_UNSUPPORTED', `TPM public area: curve ${pub.parameters.curve} has no SPKI form here`);
    // SECURITY: node/OpenSSL rejects coordinates that are not a point on the curve, so an
    // invalid-curve point never reaches ECDH or signature checks (SP 800-56A §5.6.2.3).
    return createPublicKey({
      key: { kty: 'EC', crv: c.crv, x: b64url(leftPad(pub.unique.x, c.size)), y: b64url(leftPad(pub.unique.y, c.size)) },
      format: 'jwk',
    });
  } catch (err) {
    if (err instanceof IdentityError) throw err;
    throw new IdentityError('TPM_PUBLIC_MALFORMED', 'TPM public area: key is not a valid public key', { cause: err });
  }
}

/** DER SubjectPublicKeyInfo of a TPM RSA or ECC public area. */
export function tpmPublicToSpkiDer(pub: TpmPublic): Uint8Array {
  return new Uint8Array(tpmPublicToKeyObject(pub).export({ type: 'spki', format: 'der' }));
}

/**
 * Re-encode a DER or PEM SubjectPublicKeyInfo canonically (uncompressed EC points, standard
 * algorithm identifiers), so two encodings of one key compare and hash equal.
 */
export function canonicalSpkiDer(spki: Uint8Array | string): Uint8Array {
  try {
    const key = typeof spki === 'string' ? createPublicKey(spki) : createPublicKey({ key: Buffer.from(spki), format: 'der', type: 'spki' });
    return new Uint8Array(key.export({ type: 'spki', format: 'der' }));
  } catch (err) {
    throw new IdentityError('EK_PUBLIC_INVALID', 'public key is not a valid SubjectPublicKeyInfo', { cause: err });
  }
}

/** Node identity: lower-case hex SHA-256 of the EK's canonical DER SPKI. */
export function ekHash(spkiDer: Uint8Array): string {
  return createHash('sha256').update(canonicalSpkiDer(spkiDer)).digest('hex');
}
