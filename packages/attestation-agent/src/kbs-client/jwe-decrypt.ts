/**
 * Decrypt a flattened JWE (what a KBS returns for a resource) whose key management runs somewhere
 * else — in the TPM for TPM-resident tee keys: RSA-OAEP-256 hands the encrypted CEK to an RSA
 * decryption (TPM2_RSA_Decrypt), ECDH-ES / ECDH-ES+A256KW hand the sender's ephemeral public key to
 * an ECDH (TPM2_ECDH_ZGen); the Concat KDF, AES key unwrap and A256GCM run here with node:crypto
 * (RFC 7516, RFC 7518 §4.3, §4.6, §5.3). jose is the reference: the tests decrypt what jose encrypts.
 */
import { createDecipheriv, createPublicKey } from 'node:crypto';
import type { ResourceResponse } from '@keyhold/protocol';
import { concatKdf } from './concat-kdf.js';
import { KbsClientError } from './errors.js';

/** The private-key half of the unwrap, done by whoever holds the key. */
export type JweKeyAgreement =
  | {
      readonly kind: 'rsa-oaep-256';
      /** Length of the RSA modulus in bytes (the encrypted CEK must be exactly this long). */
      readonly modulusBytes: number;
      /** RSAES-OAEP with SHA-256 (MGF1-SHA-256) and an empty label. */
      decryptKey(encryptedKey: Uint8Array): Promise<Uint8Array>;
    }
  | {
      readonly kind: 'ecdh-es';
      readonly crv: 'P-256' | 'P-384';
      /** Only ECDH-ES+A256KW, not direct ECDH-ES (software tee keys, which advertise that one algorithm). */
      readonly keyWrapOnly?: boolean;
      /** Z: the x coordinate of d·epk. */
      sharedSecret(epk: { readonly x: Uint8Array; readonly y: Uint8Array }): Promise<Uint8Array>;
    };

/** Bounds on hostile input, checked before decoding. */
const MAX_PROTECTED_CHARS = 4096;
const GCM_IV_BYTES = 12;
const GCM_TAG_BYTES = 16;
const A256KW_WRAPPED_BYTES = 40;
const CEK_BYTES = 32;
const AES_KW_IV = Buffer.from('A6A6A6A6A6A6A6A6', 'hex');
const COORDINATE_BYTES = { 'P-256': 32, 'P-384': 48 } as const;

const fail = (reason: string, cause?: unknown): KbsClientError =>
  new KbsClientError('JWE_DECRYPT_FAILED', `could not decrypt the resource: ${reason}`, cause === undefined ? undefined : { cause });

function b64url(value: unknown, member: string): Buffer {
  // SECURITY: only canonical base64url is decoded, so one JWE has one meaning (RFC 7515 §2).
  if (typeof value !== 'string' || !/^[A-Za-z0-9_-]*$/.test(value)) throw fail(`${member} is not base64url`);
  const bytes = Buffer.from(value, 'base64url');
  if (bytes.toString('base64url') !== value) throw fail(`${member} is not canonical base64url`);
  return bytes;
}

interface Header {
  readonly alg: string;
  readonly epk?: unknown;
  readonly apu?: unknown;
  readonly apv?: unknown;
}

function parseHeader(protectedB64: string): Header {
  // SECURITY: bounds the header before decoding it (hostile KBS or network).
  if (protectedB64.length > MAX_PROTECTED_CHARS) throw fail('protected header is too long');
  let header: unknown;
  try {
    header = JSON.parse(b64url(protectedB64, 'protected').toString('utf8'));
  } catch (err) {
    if (err instanceof KbsClientError) throw err;
    throw fail('protected header is not JSON', err);
  }
  if (header === null || typeof header !== 'object' || Array.isArray(header)) throw fail('protected header is not an object');
  const h = header as Record<string, unknown>;
  // SECURITY: only A256GCM content encryption (what the KBS uses); no downgrade to other `enc` (RFC 7516 §4.1.2).
  if (h['enc'] !== 'A256GCM') throw fail('enc is not A256GCM');
  // SECURITY: compression (CRIME-style leaks) and critical extensions this code does not implement are refused (RFC 7516 §4.1.3, RFC 7515 §4.1.11).
  if ('zip' in h || 'crit' in h) throw fail('zip and crit are not supported');
  if (typeof h['alg'] !== 'string') throw fail('alg is missing');
  return h as unknown as Header;
}

async function unwrapCek(jwe: ResourceResponse, header: Header, key: JweKeyAgreement): Promise<Uint8Array> {
  if (key.kind === 'rsa-oaep-256') {
    // SECURITY: the key management algorithm must be the key's own; a header naming another
    // (e.g. RSA1_5, padding oracle) is refused (algorithm confusion, RFC 7518 §4.2).
    if (header.alg !== 'RSA-OAEP-256') throw fail(`alg ${header.alg} does not fit an RSA-OAEP-256 key`);
    const encryptedKey = b64url(jwe.encrypted_key, 'encrypted_key');
    // SECURITY: an RSA ciphertext is exactly the modulus length (RFC 8017 §7.1.2 step 1).
    if (encryptedKey.length !== key.modulusBytes) throw fail('encrypted_key has the wrong length');
    const cek = await key.decryptKey(encryptedKey);
    if (cek.length !== CEK_BYTES) {
      cek.fill(0);
      throw fail('the decrypted key is not an A256GCM key');
    }
    return cek;
  }
  const direct = header.alg === 'ECDH-ES';
  // SECURITY: only ECDH-ES+A256KW (what the KBS uses) or direct ECDH-ES for an EC key (RFC 7518 §4.6).
  if (!direct && header.alg !== 'ECDH-ES+A256KW') throw fail(`alg ${header.alg} does not fit an ECDH-ES key`);
  // SECURITY: a key restricted to key wrapping takes no other algorithm, as jose's keyManagementAlgorithms allow-list did for it (algorithm confusion, RFC 7518 §4.6).
  if (direct && key.keyWrapOnly === true) throw fail('alg ECDH-ES is not this key\'s algorithm (ECDH-ES+A256KW only)');
  const epk = header.epk as Record<string, unknown> | undefined;
  if (epk === undefined || epk === null || typeof epk !== 'object' || epk['kty'] !== 'EC' || epk['crv'] !== key.crv) throw fail(`epk is not an EC ${key.crv} public key`);
  const size = COORDINATE_BYTES[key.crv];
  const x = b64url(epk['x'], 'epk.x');
  const y = b64url(epk['y'], 'epk.y');
  if (x.length !== size || y.length !== size) throw fail('epk coordinates have the wrong length');
  try {
    // SECURITY: the sender's point must lie on the curve, or ECDH with it leaks the private key
    // bit by bit (invalid-curve attack; SP 800-56A §5.6.2.3.3). The TPM checks again.
    createPublicKey({ key: { kty: 'EC', crv: key.crv, x: epk['x'] as string, y: epk['y'] as string }, format: 'jwk' });
  } catch (err) {
    throw fail('epk is not a point on the curve', err);
  }
  const apu = header.apu === undefined ? new Uint8Array(0) : b64url(header.apu, 'apu');
  const apv = header.apv === undefined ? new Uint8Array(0) : b64url(header.apv, 'apv');
  const z = await key.sharedSecret({ x, y });
  try {
    const derived = concatKdf({ sharedSecret: z, algorithmId: direct ? 'A256GCM' : 'ECDH-ES+A256KW', keyBits: 256, partyUInfo: apu, partyVInfo: apv });
    const encryptedKey = b64url(jwe.encrypted_key, 'encrypted_key');
    if (direct) {
      // SECURITY: direct key agreement carries no encrypted key (RFC 7518 §4.6); anything there is tampering.
      if (encryptedKey.length !== 0) throw fail('encrypted_key must be empty for ECDH-ES');
      return derived;
    }
    // SECURITY: an AES-KW-wrapped 256-bit key is exactly 40 bytes (RFC 3394 §2.2.1).
    if (encryptedKey.length !== A256KW_WRAPPED_BYTES) throw fail('encrypted_key has the wrong length');
    try {
      const d = createDecipheriv('id-aes256-wrap', derived, AES_KW_IV);
      return new Uint8Array(Buffer.concat([d.update(encryptedKey), d.final()]));
    } catch (err) {
      // SECURITY: AES-KW's integrity check fails for a wrong key or a tampered encrypted_key (RFC 3394 §2.2.3).
      throw fail('the content key does not unwrap (wrong key or tampered encrypted_key)', err);
    } finally {
      derived.fill(0);
    }
  } finally {
    z.fill(0);
  }
}

/**
 * Decrypt `jwe` with `key`. Guarantees, when it returns: the protected header names A256GCM and
 * the key's own key-management algorithm (RSA-OAEP-256, or ECDH-ES / ECDH-ES+A256KW with an epk on
 * the key's curve), every member is canonical base64url of the right length, and the AES-GCM tag
 * verifies over the ciphertext with the protected header (and `aad`) as additional data. Keys
 * derived on the way are zeroed.
 *
 * @throws KbsClientError `JWE_DECRYPT_FAILED`; errors of the key operation (e.g. a TPM refusing a
 *   sealed key) pass through unchanged.
 */
export async function decryptFlattenedJwe(jwe: ResourceResponse, key: JweKeyAgreement): Promise<Uint8Array> {
  const header = parseHeader(jwe.protected);
  const iv = b64url(jwe.iv, 'iv');
  const tag = b64url(jwe.tag, 'tag');
  const ciphertext = b64url(jwe.ciphertext, 'ciphertext');
  // SECURITY: a 96-bit IV and a full 128-bit tag only; short tags weaken GCM's integrity (NIST SP 800-38D §5.2.1.2).
  if (iv.length !== GCM_IV_BYTES || tag.length !== GCM_TAG_BYTES) throw fail('iv or tag has the wrong length');
  const cek = await unwrapCek(jwe, header, key);
  try {
    const aad = jwe.aad === undefined ? jwe.protected : `${jwe.protected}.${jwe.aad}`;
    const d = createDecipheriv('aes-256-gcm', cek, iv, { authTagLength: GCM_TAG_BYTES });
    d.setAAD(Buffer.from(aad, 'ascii'));
    d.setAuthTag(tag);
    return new Uint8Array(Buffer.concat([d.update(ciphertext), d.final()]));
  } catch (err) {
    // SECURITY: a failed tag means a tampered or misdirected JWE: nothing of the plaintext is returned (RFC 7516 §5.2 step 16).
    throw fail('authentication tag does not verify (tampered or not for this key)', err);
  } finally {
    cek.fill(0);
  }
}
