import { sign, type KeyObject } from 'node:crypto';
import { encodeBase64url } from './base64url.js';

/**
 * ES256 JWS compact signing (RFC 7515 §7.1, RFC 7518 §3.4) with synchronous node:crypto, for the
 * EAR tokens /attest issues. The protected header is fixed at construction and encoded once; each
 * call serialises the payload, signs `BASE64URL(header).BASE64URL(payload)` with ECDSA P-256 /
 * SHA-256 and appends the 64-byte R‖S signature. Byte-compatible with jose's `SignJWT` (proved by
 * es256-sign.test.ts); jose remains the reference.
 */
export class Es256CompactSigner {
  readonly #key: KeyObject;
  readonly #headerB64: string;

  constructor(privateKey: KeyObject, protectedHeader: Readonly<Record<string, unknown>>) {
    if (privateKey.type !== 'private' || privateKey.asymmetricKeyType !== 'ec' || privateKey.asymmetricKeyDetails?.namedCurve !== 'prime256v1') {
      throw new TypeError('ES256 needs an EC P-256 private key');
    }
    if (protectedHeader['alg'] !== 'ES256') throw new TypeError('the protected header must name alg ES256');
    if ('crit' in protectedHeader || 'b64' in protectedHeader) throw new TypeError('crit and b64 headers are not supported');
    this.#key = privateKey;
    this.#headerB64 = encodeBase64url(JSON.stringify(protectedHeader));
  }

  /** The compact JWS of `payload` serialised with JSON.stringify (key order kept, as jose does). */
  sign(payload: Readonly<Record<string, unknown>>): string {
    const signingInput = `${this.#headerB64}.${encodeBase64url(JSON.stringify(payload))}`;
    // ieee-p1363: the fixed 64-byte R‖S form JWS requires, not DER (RFC 7518 §3.4).
    const signature = sign('sha256', Buffer.from(signingInput, 'latin1'), { key: this.#key, dsaEncoding: 'ieee-p1363' });
    return `${signingInput}.${signature.toString('base64url')}`;
  }
}
