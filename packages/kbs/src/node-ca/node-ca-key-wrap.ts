/**
 * Wrapping of the generated node CA's private key at rest in the state (Redis or the data dir):
 * AES-256-GCM under a key derived with HKDF-SHA256 from the token signing key's private scalar
 * (every replica must share that key anyway, to verify each other's tokens), with the CA
 * certificate's DER as additional data, so a wrapped key only unwraps for its own certificate.
 * Whoever holds the token signing key can already mint attestation tokens and so obtain node
 * certificates; the wrapping keeps the CA key unusable for a reader of the state alone.
 */
import { createCipheriv, createDecipheriv, hkdfSync, randomBytes, type KeyObject } from 'node:crypto';

const INFO = 'keyhold node-ca key wrap v1';
const SALT = 'keyhold';

/** The 32-byte wrapping key derived from the token signing key (EC P-256 private key). */
export function nodeCaWrapKey(signingKey: KeyObject): Buffer {
  const jwk = signingKey.export({ format: 'jwk' });
  if (typeof jwk.d !== 'string') throw new TypeError('the token signing key must be a private key');
  const d = Buffer.from(jwk.d, 'base64url');
  try {
    return Buffer.from(hkdfSync('sha256', d, SALT, INFO, 32));
  } finally {
    d.fill(0);
  }
}

/** base64url(iv || ciphertext || tag). */
export function wrapNodeCaKey(wrapKey: Uint8Array, pkcs8Der: Uint8Array, certificateDer: Uint8Array): string {
  const iv = randomBytes(12);
  const c = createCipheriv('aes-256-gcm', wrapKey, iv);
  c.setAAD(certificateDer);
  const ct = Buffer.concat([c.update(pkcs8Der), c.final()]);
  return Buffer.concat([iv, ct, c.getAuthTag()]).toString('base64url');
}

/** The PKCS#8 DER, or undefined when the wrapped key does not open (another signing key, another certificate, damage). */
export function unwrapNodeCaKey(wrapKey: Uint8Array, wrapped: string, certificateDer: Uint8Array): Buffer | undefined {
  const raw = Buffer.from(wrapped, 'base64url');
  if (raw.length < 12 + 16 + 1) return undefined;
  try {
    const d = createDecipheriv('aes-256-gcm', wrapKey, raw.subarray(0, 12));
    d.setAAD(certificateDer);
    d.setAuthTag(raw.subarray(raw.length - 16));
    return Buffer.concat([d.update(raw.subarray(12, raw.length - 16)), d.final()]);
  } catch {
    return undefined;
  }
}
