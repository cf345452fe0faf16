import { createPublicKey, type KeyObject } from 'node:crypto';
import { checkTeePubkey } from '@keyhold/protocol';
import { KbsError } from '../errors.js';
import { decodeBase64urlStrict } from './base64url.js';

export const ECDH_ES_A256KW = 'ECDH-ES+A256KW';
export const RSA_OAEP_256 = 'RSA-OAEP-256';
export const MIN_RSA_MODULUS_BITS = 2048;

export type TeeKeyCurve = 'P-256' | 'P-384' | 'P-521';

/**
 * A tee public key accepted for wrapping, with the one key-management algorithm it is used with.
 * EC keys are kept as their SEC 1 uncompressed point (0x04 ‖ x ‖ y, full-size coordinates): the
 * ECDH that wraps to them decodes the point and refuses one that is not on the curve (see
 * jwe-ecdh-es-a256kw.ts), so no KeyObject is built for them (OpenSSL's JWK import costs as much as
 * the ECDH itself).
 */
export type TeeKey =
  | { readonly kty: 'EC'; readonly alg: typeof ECDH_ES_A256KW; readonly crv: TeeKeyCurve; readonly point: Buffer }
  | { readonly kty: 'RSA'; readonly alg: typeof RSA_OAEP_256; readonly modulusBits: number; readonly key: KeyObject };

/** Bytes of one coordinate of each curve (RFC 7518 §6.2.1.2: x and y are always this long). */
export const COORDINATE_BYTES: Readonly<Record<TeeKeyCurve, number>> = { 'P-256': 32, 'P-384': 48, 'P-521': 66 };

/** SEC 1 §2.3.3: the uncompressed point form's first octet. */
const UNCOMPRESSED = Buffer.from([0x04]);

/**
 * Import the tee public key bound into the evidence (a JWK), with synchronous node:crypto.
 *
 * Guarantees, together with the encryption that follows (exactly what today's jose path —
 * `TeePubkeySchema` (checked by `checkTeePubkey`) + `importJWK` + jose's key checks — accepts; tee-key-import.test.ts compares):
 * a public JWK of the protocol's shape only (EC P-256/P-384/P-521 with x/y, or RSA with n/e; no
 * private or unknown members); its `alg`, when present, equal to the one algorithm used for its
 * type (ECDH-ES+A256KW for EC, RSA-OAEP-256 for RSA; RSA1_5 and every other value refused); EC
 * coordinates of exactly the curve's size, strict base64url; RSA moduli of at least 2048 bits.
 * That an EC point lies on its curve is checked by the ECDH in `encryptEcdhEsA256kw`, before any
 * key material is derived (OpenSSL decodes and checks the point, as WebCrypto's import does).
 * Not checked: the RSA public exponent beyond what OpenSSL refuses, key provenance (the quote binds
 * the key; that is the appraiser's job). Every failure is a `JWE_FAILED` KbsError.
 */
export function importTeeKey(jwk: unknown): TeeKey {
  const pub = checkTeePubkey(jwk);
  // SECURITY: only a well-formed public JWK of the protocol's shape is used: private members (`d`),
  // other key types and unknown members are refused, and a token without one releases nothing
  // (key substitution) (PROTOCOL-NOTES §1, RFC 7517 §4).
  if (pub === undefined) throw new KbsError('JWE_FAILED', 'attestation carries no usable tee-pubkey');
  const alg = pub.kty === 'EC' ? ECDH_ES_A256KW : RSA_OAEP_256;
  // SECURITY: the key's own `alg` must agree with the one we use; a downgrade to RSA1_5 (padding
  // oracle) or a mismatched algorithm is refused (algorithm confusion) (RFC 8725 §3.1).
  if (pub.alg !== undefined && pub.alg !== alg) throw new KbsError('JWE_FAILED', `tee-pubkey alg must be ${alg}`);
  if (pub.kty === 'EC') {
    const size = COORDINATE_BYTES[pub.crv];
    const x = decodeBase64urlStrict(pub.x);
    const y = decodeBase64urlStrict(pub.y);
    // SECURITY: full-size coordinates of the curve the JWK names, strict base64url: a point of
    // another curve (curve confusion) or a truncated one is refused; whether the point lies on the
    // curve is checked by the ECDH itself (invalid-curve attack) (RFC 7518 §6.2.1.2, SEC 1 §2.3.4).
    if (x === undefined || y === undefined || x.length !== size || y.length !== size) throw new KbsError('JWE_FAILED', 'tee-pubkey is not a valid public key');
    return { kty: 'EC', alg: ECDH_ES_A256KW, crv: pub.crv, point: Buffer.concat([UNCOMPRESSED, x, y], 1 + 2 * size) };
  }
  const cacheKey = `${pub.n}.${pub.e}`;
  const cached = acceptedRsaKeys.get(cacheKey);
  if (cached !== undefined) return cached;
  let key: KeyObject;
  try {
    // SECURITY: OpenSSL refuses malformed RSA numbers (RFC 7518 §6.3.1).
    key = createPublicKey({ key: { kty: 'RSA', n: pub.n, e: pub.e }, format: 'jwk' });
  } catch (cause) {
    throw new KbsError('JWE_FAILED', 'tee-pubkey is not a valid public key', { cause });
  }
  const modulusBits = key.asymmetricKeyDetails?.modulusLength ?? 0;
  // SECURITY: refuses weak RSA wrapping keys (factorable moduli) (RFC 7518 §4.3, NIST SP 800-131A).
  if (key.asymmetricKeyType !== 'rsa' || modulusBits < MIN_RSA_MODULUS_BITS) {
    throw new KbsError('JWE_FAILED', `tee-pubkey RSA modulus must be at least ${MIN_RSA_MODULUS_BITS} bits`);
  }
  const accepted: TeeKey = { kty: 'RSA', alg: RSA_OAEP_256, modulusBits, key };
  if (acceptedRsaKeys.size >= MAX_CACHED_RSA_KEYS) acceptedRsaKeys.delete(acceptedRsaKeys.keys().next().value as string);
  acceptedRsaKeys.set(cacheKey, accepted);
  return accepted;
}

/**
 * RSA tee keys that passed every check above, by modulus and exponent (the JWK's exact base64url
 * text, after the shape and alg checks). An RSA tee key (TPM-resident keys, image decryption) is
 * used for several `/resource` calls in a row — one per layer key of an image — and OpenSSL's JWK
 * import costs about as much as the RSA-OAEP wrapping; only accepted keys are kept, at most 256
 * (oldest out first). EC keys need no cache: they are never imported (see TeeKey).
 */
const acceptedRsaKeys = new Map<string, TeeKey>();
const MAX_CACHED_RSA_KEYS = 256;
