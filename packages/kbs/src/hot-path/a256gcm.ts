import { createCipheriv, randomBytes } from 'node:crypto';

export interface GcmSealed {
  iv: Buffer;
  ciphertext: Buffer;
  tag: Buffer;
}

/**
 * JWE content encryption with A256GCM (RFC 7518 §5.3): a fresh random 96-bit IV, the 128-bit tag,
 * and the ASCII of the encoded protected header as additional authenticated data (RFC 7516 §5.1).
 */
export function encryptA256gcm(cek: Uint8Array, plaintext: Uint8Array, aad: string, iv: Buffer = randomBytes(12)): GcmSealed {
  if (cek.length !== 32) throw new TypeError('A256GCM needs a 256-bit content-encryption key');
  if (iv.length !== 12) throw new TypeError('A256GCM needs a 96-bit IV');
  const cipher = createCipheriv('aes-256-gcm', cek, iv, { authTagLength: 16 });
  cipher.setAAD(Buffer.from(aad, 'ascii'));
  const ciphertext = Buffer.concat([cipher.update(plaintext), cipher.final()]);
  return { iv, ciphertext, tag: cipher.getAuthTag() };
}
