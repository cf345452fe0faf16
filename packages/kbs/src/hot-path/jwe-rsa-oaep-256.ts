import { constants, publicEncrypt, randomBytes } from 'node:crypto';
import type { ResourceResponse } from '@keyhold/protocol';
import { encryptA256gcm } from './a256gcm.js';
import { encodeBase64url } from './base64url.js';
import { MIN_RSA_MODULUS_BITS, RSA_OAEP_256, type TeeKey } from './tee-key-import.js';

type RsaTeeKey = Extract<TeeKey, { kty: 'RSA' }>;

/** The protected header jose writes for `{ alg: 'RSA-OAEP-256', enc: 'A256GCM' }`, encoded once. */
const PROTECTED_B64 = encodeBase64url(JSON.stringify({ alg: RSA_OAEP_256, enc: 'A256GCM' }));

/**
 * Encrypt `plaintext` to an RSA tee key as a flattened JWE (RFC 7516 §7.2.2) with RSA-OAEP-256
 * (RFC 7518 §4.3: OAEP with SHA-256 and MGF1-SHA-256) wrapping a random 256-bit CEK, and A256GCM,
 * with synchronous node:crypto. The key must come from `importTeeKey` (RSA ≥ 2048 bits).
 */
export function encryptRsaOaep256(plaintext: Uint8Array, recipient: RsaTeeKey): ResourceResponse {
  // SECURITY: never wrap to a short modulus, even if a caller skipped importTeeKey (factorable keys) (RFC 7518 §4.3).
  if (recipient.modulusBits < MIN_RSA_MODULUS_BITS) throw new TypeError('RSA-OAEP-256 needs a modulus of at least 2048 bits');
  const cek = randomBytes(32);
  const encryptedKey = publicEncrypt({ key: recipient.key, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: 'sha256' }, cek);
  const sealed = encryptA256gcm(cek, plaintext, PROTECTED_B64);
  cek.fill(0);
  return {
    protected: PROTECTED_B64,
    encrypted_key: encryptedKey.toString('base64url'),
    iv: sealed.iv.toString('base64url'),
    ciphertext: sealed.ciphertext.toString('base64url'),
    tag: sealed.tag.toString('base64url'),
  };
}
