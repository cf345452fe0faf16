import { createECDH, randomBytes, type ECDH } from 'node:crypto';
import type { ResourceResponse } from '@keyhold/protocol';
import { KbsError } from '../errors.js';
import { encryptA256gcm } from './a256gcm.js';
import { aes256KeyWrap } from './aes-key-wrap.js';
import { encodeBase64url } from './base64url.js';
import { concatKdf } from './concat-kdf.js';
import { COORDINATE_BYTES, ECDH_ES_A256KW, type TeeKey, type TeeKeyCurve } from './tee-key-import.js';

type EcTeeKey = Extract<TeeKey, { kty: 'EC' }>;

const OPENSSL_CURVE: Readonly<Record<TeeKeyCurve, string>> = { 'P-256': 'prime256v1', 'P-384': 'secp384r1', 'P-521': 'secp521r1' };

/**
 * One ECDH context per curve, re-keyed for every JWE: `generateKeys()` draws a fresh ephemeral key
 * pair each call (RFC 7518 §4.6: a new ephemeral key per message), so only the curve setup, which
 * costs more than the key generation, is reused.
 */
const ephemeralContexts = new Map<TeeKeyCurve, ECDH>();

/**
 * Encrypt `plaintext` to an EC tee key as a flattened JWE (RFC 7516 §7.2.2) with
 * ECDH-ES+A256KW (RFC 7518 §4.6) and A256GCM, with synchronous node:crypto:
 * a fresh ephemeral key on the recipient's curve, Z = ECDH(ephemeral, recipient), KEK = Concat KDF
 * (Z, "ECDH-ES+A256KW", 256 bits, no apu/apv), a random 256-bit CEK wrapped with AES-KW, the
 * content sealed with A256GCM under the protected header `{"alg","enc","epk"}`. The header's
 * members and order are jose's (`FlattenedEncrypt`), so either side can be swapped for the other.
 * The key must come from `importTeeKey` (which checked its shape, alg and coordinate sizes); the
 * point itself is checked here, by the ECDH, before anything is derived from it.
 *
 * @throws KbsError `JWE_FAILED` when the recipient point is not on its curve.
 */
export function encryptEcdhEsA256kw(plaintext: Uint8Array, recipient: EcTeeKey): ResourceResponse {
  let ephemeral = ephemeralContexts.get(recipient.crv);
  if (ephemeral === undefined) {
    ephemeral = createECDH(OPENSSL_CURVE[recipient.crv]);
    ephemeralContexts.set(recipient.crv, ephemeral);
  }
  const ephemeralPoint = ephemeral.generateKeys();
  let z: Buffer;
  try {
    // SECURITY: OpenSSL decodes the recipient point and refuses one that is not on the curve (or
    // has coordinates ≥ p, or is the point at infinity) before multiplying: an off-curve point would
    // make the shared secret leak the private key (invalid-curve attack) (SP 800-56A §5.6.2.3, RFC 7518 §6.2.1).
    z = ephemeral.computeSecret(recipient.point);
  } catch (cause) {
    throw new KbsError('JWE_FAILED', 'tee-pubkey is not a valid public key', { cause });
  }
  const kek = concatKdf(z, ECDH_ES_A256KW, 256);
  const cek = randomBytes(32);
  const encryptedKey = aes256KeyWrap(kek, cek);
  const n = COORDINATE_BYTES[recipient.crv];
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
