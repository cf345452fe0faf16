import { createECDH, randomBytes, type JsonWebKey } from 'node:crypto';
import type { ResourceResponse } from '@keyhold/protocol';
import { encryptA256gcm } from './a256gcm.js';
import { aes256KeyWrap } from './aes-key-wrap.js';
import { encodeBase64url } from './base64url.js';
import { concatKdf } from './concat-kdf.js';
import { ECDH_ES_A256KW, type TeeKey, type TeeKeyCurve } from './tee-key-import.js';

type EcTeeKey = Extract<TeeKey, { kty: 'EC' }>;

const CURVE: Readonly<Record<TeeKeyCurve, { openssl: string; coordinateBytes: number }>> = {
  'P-256': { openssl: 'prime256v1', coordinateBytes: 32 },
  'P-384': { openssl: 'secp384r1', coordinateBytes: 48 },
  'P-521': { openssl: 'secp521r1', coordinateBytes: 66 },
};

/**
 * Encrypt `plaintext` to an EC tee key as a flattened JWE (RFC 7516 §7.2.2) with
 * ECDH-ES+A256KW (RFC 7518 §4.6) and A256GCM, with synchronous node:crypto:
 * a fresh ephemeral key on the recipient's curve, Z = ECDH(ephemeral, recipient), KEK = Concat KDF
 * (Z, "ECDH-ES+A256KW", 256 bits, no apu/apv), a random 256-bit CEK wrapped with AES-KW, the
 * content sealed with A256GCM under the protected header `{"alg","enc","epk"}`. The header's
 * members and order are jose's (`FlattenedEncrypt`), so either side can be swapped for the other.
 * The key must come from `importTeeKey` (which checked its shape, alg and curve point).
 */
export function encryptEcdhEsA256kw(plaintext: Uint8Array, recipient: EcTeeKey): ResourceResponse {
  const curve = CURVE[recipient.crv];
  const rjwk = recipient.key.export({ format: 'jwk' }) as JsonWebKey;
  // Node exports fixed-length coordinates, so this is the SEC 1 uncompressed point of the key.
  const recipientPoint = Buffer.concat([UNCOMPRESSED, Buffer.from(rjwk.x ?? '', 'base64url'), Buffer.from(rjwk.y ?? '', 'base64url')]);
  const ephemeral = createECDH(curve.openssl);
  const ephemeralPoint = ephemeral.generateKeys();
  // OpenSSL rejects a point off the curve here too (it decodes the point before multiplying).
  const z = ephemeral.computeSecret(recipientPoint);
  const kek = concatKdf(z, ECDH_ES_A256KW, 256);
  const cek = randomBytes(32);
  const encryptedKey = aes256KeyWrap(kek, cek);
  const n = curve.coordinateBytes;
  const header = {
    alg: ECDH_ES_A256KW,
    enc: 'A256GCM',
    epk: { x: ephemeralPoint.toString('base64url', 1, 1 + n), crv: recipient.crv, kty: 'EC', y: ephemeralPoint.toString('base64url', 1 + n, 1 + 2 * n) },
  };
  const protectedB64 = encodeBase64url(JSON.stringify(header));
  const sealed = encryptA256gcm(cek, plaintext, protectedB64);
  z.fill(0);
  kek.fill(0);
  cek.fill(0);
  return {
    protected: protectedB64,
    encrypted_key: encryptedKey.toString('base64url'),
    iv: sealed.iv.toString('base64url'),
    ciphertext: sealed.ciphertext.toString('base64url'),
    tag: sealed.tag.toString('base64url'),
  };
}

const UNCOMPRESSED = Buffer.from([0x04]);
