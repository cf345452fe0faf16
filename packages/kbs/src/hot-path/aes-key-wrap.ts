import { createCipheriv } from 'node:crypto';

/** RFC 3394 §2.2.3.1 default initial value. */
const DEFAULT_IV = Buffer.from('a6a6a6a6a6a6a6a6', 'hex');

/** AES-256 Key Wrap (RFC 3394; JWA `A256KW`, RFC 7518 §4.4) with OpenSSL's `id-aes256-wrap`. */
export function aes256KeyWrap(kek: Uint8Array, keyData: Uint8Array): Buffer {
  if (kek.length !== 32) throw new TypeError('A256KW needs a 256-bit key-encryption key');
  if (keyData.length < 16 || keyData.length % 8 !== 0) throw new TypeError('key data must be a multiple of 64 bits, at least 128');
  const cipher = createCipheriv('id-aes256-wrap', kek, DEFAULT_IV);
  return Buffer.concat([cipher.update(keyData), cipher.final()]);
}
