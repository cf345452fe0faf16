import { createPublicKey, type KeyObject } from 'node:crypto';
import { TeePubkeySchema } from '@keyhold/protocol';
import { KbsError } from '../errors.js';

export const ECDH_ES_A256KW = 'ECDH-ES+A256KW';
export const RSA_OAEP_256 = 'RSA-OAEP-256';
export const MIN_RSA_MODULUS_BITS = 2048;

export type TeeKeyCurve = 'P-256' | 'P-384' | 'P-521';

/** A tee public key accepted for wrapping, with the one key-management algorithm it is used with. */
export type TeeKey =
  | { readonly kty: 'EC'; readonly alg: typeof ECDH_ES_A256KW; readonly crv: TeeKeyCurve; readonly key: KeyObject }
  | { readonly kty: 'RSA'; readonly alg: typeof RSA_OAEP_256; readonly modulusBits: number; readonly key: KeyObject };

/** Node's names of the NIST curves, to check what OpenSSL actually imported. */
const OPENSSL_CURVE: Readonly<Record<TeeKeyCurve, string>> = { 'P-256': 'prime256v1', 'P-384': 'secp384r1', 'P-521': 'secp521r1' };

/**
 * Import the tee public key bound into the evidence (a JWK), with synchronous node:crypto.
 *
 * Guarantees, exactly as today's jose path (`TeePubkeySchema` + `importJWK` + jose's key checks):
 * a public JWK of the protocol's shape only (EC P-256/P-384/P-521 with x/y, or RSA with n/e; no
 * private or unknown members); its `alg`, when present, equal to the one algorithm used for its
 * type (ECDH-ES+A256KW for EC, RSA-OAEP-256 for RSA; RSA1_5 and every other value refused); EC
 * points on their curve (OpenSSL checks while importing, as WebCrypto's import does); RSA moduli of
 * at least 2048 bits. Not checked: the RSA public exponent beyond what OpenSSL refuses, key
 * provenance (the quote binds the key; that is the appraiser's job).
 * Every failure is a `JWE_FAILED` KbsError.
 */
export function importTeeKey(jwk: unknown): TeeKey {
  const parsed = TeePubkeySchema.safeParse(jwk);
  // SECURITY: only a well-formed public JWK of the protocol's shape is used: private members (`d`),
  // other key types and unknown members are refused, and a token without one releases nothing
  // (key substitution) (PROTOCOL-NOTES §1, RFC 7517 §4).
  if (!parsed.success) throw new KbsError('JWE_FAILED', 'attestation carries no usable tee-pubkey');
  const pub = parsed.data;
  const alg = pub.kty === 'EC' ? ECDH_ES_A256KW : RSA_OAEP_256;
  // SECURITY: the key's own `alg` must agree with the one we use; a downgrade to RSA1_5 (padding
  // oracle) or a mismatched algorithm is refused (algorithm confusion) (RFC 8725 §3.1).
  if (pub.alg !== undefined && pub.alg !== alg) throw new KbsError('JWE_FAILED', `tee-pubkey alg must be ${alg}`);
  let key: KeyObject;
  try {
    // SECURITY: OpenSSL refuses EC points that are not on the named curve (invalid-curve attack,
    // which would leak the ECDH result) and malformed RSA numbers (RFC 7518 §6.2.1, SEC 1 §3.2.2).
    key = createPublicKey({ key: pub.kty === 'EC' ? { kty: 'EC', crv: pub.crv, x: pub.x, y: pub.y } : { kty: 'RSA', n: pub.n, e: pub.e }, format: 'jwk' });
  } catch (cause) {
    throw new KbsError('JWE_FAILED', 'tee-pubkey is not a valid public key', { cause });
  }
  if (pub.kty === 'EC') {
    // SECURITY: the imported key is on the curve the JWK names, nothing else (curve confusion).
    if (key.asymmetricKeyType !== 'ec' || key.asymmetricKeyDetails?.namedCurve !== OPENSSL_CURVE[pub.crv]) {
      throw new KbsError('JWE_FAILED', 'tee-pubkey is not a valid public key');
    }
    return { kty: 'EC', alg: ECDH_ES_A256KW, crv: pub.crv, key };
  }
  const modulusBits = key.asymmetricKeyDetails?.modulusLength ?? 0;
  // SECURITY: refuses weak RSA wrapping keys (factorable moduli) (RFC 7518 §4.3, NIST SP 800-131A).
  if (key.asymmetricKeyType !== 'rsa' || modulusBits < MIN_RSA_MODULUS_BITS) {
    throw new KbsError('JWE_FAILED', `tee-pubkey RSA modulus must be at least ${MIN_RSA_MODULUS_BITS} bits`);
  }
  return { kty: 'RSA', alg: RSA_OAEP_256, modulusBits, key };
}
