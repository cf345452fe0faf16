import type { KeyObject } from 'node:crypto';
import type { FlattenedJWE, GeneralJWE } from 'jose';
// jose's JWE entry points rather than its index: an unbundled process that encrypts or decrypts
// an image then loads ~45 ms of jose instead of ~115 ms (measured on 2 busy cores), and ~1 MiB less.
import { flattenedDecrypt } from 'jose/jwe/flattened/decrypt';
import { FlattenedEncrypt } from 'jose/jwe/flattened/encrypt';
import { generalDecrypt } from 'jose/jwe/general/decrypt';
import { GeneralEncrypt } from 'jose/jwe/general/encrypt';
import { OcicryptError } from '../errors.js';
import { MAX_OPTS_BYTES } from '../layer/options.js';
import { KEYS_ANNOTATION_PREFIX, splitKeysAnnotation, type Recipient, type Unwrapper } from './types.js';

export const JWE_SCHEME = 'jwe';
export const JWE_ANNOTATION = KEYS_ANNOTATION_PREFIX + JWE_SCHEME;
/** Content encryption ocicrypt uses for every JWE it writes (keywrap/jwe/keywrapper_jwe.go). */
export const JWE_ENC = 'A256GCM';
/** Key management per key type, as ocicrypt picks it: RSA → RSA-OAEP, EC → ECDH-ES+A256KW. */
export const JWE_KEY_ALGORITHMS = ['RSA-OAEP', 'ECDH-ES+A256KW'] as const;
/** Largest JWE annotation value accepted (one RSA-4096 recipient is ~1.2 KiB). */
export const MAX_JWE_BYTES = 256 * 1024;

function algFor(key: KeyObject): (typeof JWE_KEY_ALGORITHMS)[number] {
  if (key.type !== 'public') throw new TypeError('JWE recipients need public keys');
  if (key.asymmetricKeyType === 'rsa') return 'RSA-OAEP';
  if (key.asymmetricKeyType === 'ec') return 'ECDH-ES+A256KW';
  throw new TypeError(`JWE recipients must be RSA or EC keys, not ${String(key.asymmetricKeyType)}`);
}

/**
 * Wrap optsdata for `publicKeys` exactly as ocicrypt's JWE key wrapper does: one JWE, A256GCM
 * content encryption, one recipient per key. With one key the result is go-jose's flattened
 * JSON serialization with `{"alg","enc"}` protected; with more it is the general serialization
 * (`enc` protected, each recipient's `alg` in its own header). Go's ParseEncrypted reads both.
 */
export async function jweWrap(optsData: Uint8Array, publicKeys: readonly KeyObject[]): Promise<Uint8Array> {
  if (publicKeys.length === 0) throw new TypeError('jweWrap needs at least one public key');
  const first = publicKeys[0] as KeyObject;
  if (publicKeys.length === 1) {
    const jwe = await new FlattenedEncrypt(optsData).setProtectedHeader({ alg: algFor(first), enc: JWE_ENC }).encrypt(first);
    return Buffer.from(JSON.stringify(jwe), 'utf8');
  }
  const enc = new GeneralEncrypt(optsData).setProtectedHeader({ enc: JWE_ENC });
  for (const k of publicKeys) enc.addRecipient(k).setUnprotectedHeader({ alg: algFor(k) });
  return Buffer.from(JSON.stringify(await enc.encrypt()), 'utf8');
}

/** A {@link Recipient} for ocicrypt's `jwe` scheme. */
export function jweRecipient(publicKeys: readonly KeyObject[]): Recipient {
  if (publicKeys.length === 0) throw new TypeError('jweRecipient needs at least one public key');
  for (const k of publicKeys) algFor(k);
  return { scheme: JWE_SCHEME, wrap: (optsData) => jweWrap(optsData, publicKeys) };
}

/**
 * Unwrap one JWE (flattened or general JSON serialization) with the first private key that
 * works. Guarantees: only RSA-OAEP / ECDH-ES+A256KW with A256GCM are accepted; the plaintext
 * is authenticated by AES-GCM. It does not check which key the JWE was meant for.
 */
export async function jweUnwrap(jweBytes: Uint8Array, privateKeys: readonly KeyObject[]): Promise<Uint8Array> {
  if (privateKeys.length === 0) throw new TypeError('jweUnwrap needs at least one private key');
  // SECURITY: bound the JSON parsed from an attacker-supplied annotation (STYLE §6).
  if (jweBytes.byteLength > MAX_JWE_BYTES) throw new OcicryptError('JWE_MALFORMED', 'JWE is too large');
  let jwe: unknown;
  // SECURITY: the JWE must be a JSON object (flattened or general serialization, RFC 7516 §7.2).
  try {
    jwe = JSON.parse(Buffer.from(jweBytes).toString('utf8'));
  } catch (cause) {
    throw new OcicryptError('JWE_MALFORMED', 'JWE is not JSON', { cause });
  }
  if (typeof jwe !== 'object' || jwe === null || Array.isArray(jwe)) throw new OcicryptError('JWE_MALFORMED', 'JWE is not a JSON object');
  // SECURITY: pin the algorithms ocicrypt writes, so a hostile image cannot steer us to RSA1_5
  // (Bleichenbacher) or to a key-agreement mode we never use (RFC 8725 §3.1).
  const options = { keyManagementAlgorithms: [...JWE_KEY_ALGORITHMS], contentEncryptionAlgorithms: [JWE_ENC] };
  let lastError: unknown;
  for (const key of privateKeys) {
    try {
      const r = 'recipients' in jwe
        ? await generalDecrypt(jwe as GeneralJWE, key, options)
        : await flattenedDecrypt(jwe as FlattenedJWE, key, options);
      // SECURITY: optsdata is small; refuse anything else before it is parsed (STYLE §6).
      if (r.plaintext.byteLength > MAX_OPTS_BYTES) throw new OcicryptError('JWE_MALFORMED', 'JWE plaintext is too large');
      return r.plaintext;
    } catch (err) {
      if (err instanceof OcicryptError) throw err;
      lastError = err;
    }
  }
  throw new OcicryptError('JWE_DECRYPT_FAILED', 'no private key could decrypt the JWE', { cause: lastError });
}

/** An {@link Unwrapper} for the `jwe` scheme, trying every JWE in the annotation. */
export function jweUnwrapper(privateKeys: readonly KeyObject[]): Unwrapper {
  if (privateKeys.length === 0) throw new TypeError('jweUnwrapper needs at least one private key');
  for (const k of privateKeys) if (k.type !== 'private') throw new TypeError('jweUnwrapper needs private keys');
  return async (annotations) => {
    const value = annotations[JWE_ANNOTATION];
    // SECURITY: no wrapped key, no decryption: never fall back to anything else.
    if (value === undefined || value === '') throw new OcicryptError('NO_WRAPPED_KEY', 'layer has no JWE-wrapped key');
    let first: unknown;
    for (const jwe of splitKeysAnnotation(value, MAX_JWE_BYTES)) {
      try {
        return await jweUnwrap(jwe, privateKeys);
      } catch (err) {
        first ??= err;
      }
    }
    throw first instanceof OcicryptError ? first : new OcicryptError('UNWRAP_FAILED', 'no JWE could be unwrapped', { cause: first });
  };
}
