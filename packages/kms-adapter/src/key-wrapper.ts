import { createCipheriv, createDecipheriv, createHash, randomBytes } from 'node:crypto';
import { KmsError } from './errors.js';

/**
 * Wraps the per-value data keys of envelope encryption under a key the store itself does not hold
 * in its backend: a local master key (`LocalKeyWrapper`) or Vault Transit
 * (`createVaultTransitKeyWrapper`). The embedded and Redis backends take one.
 */
export interface KeyWrapper {
  /** Identifies the wrapping key (recorded with each value; a mismatch on read is KMS_CORRUPT). */
  readonly id: string;
  /** Wrap a 32-byte data key; `context` (resource path and version) is bound where supported. */
  wrap(dataKey: Uint8Array, context: string): Promise<string>;
  /** Unwrap; throws KMS_CORRUPT when the wrapped key fails authentication. */
  unwrap(wrapped: string, context: string): Promise<Uint8Array>;
}

export const MASTER_KEY_BYTES = 32;
const IV_BYTES = 12;
const TAG_BYTES = 16;
const WRAPPED_CHARS_MAX = 4096;

/** AES-256-GCM key wrapping under a 32-byte master key kept by the KBS (never sent to a backend). */
export class LocalKeyWrapper implements KeyWrapper {
  readonly id: string;
  readonly #key: Buffer;

  constructor(masterKey: Uint8Array) {
    if (masterKey.length !== MASTER_KEY_BYTES) throw new TypeError('the master key is 32 bytes');
    this.#key = Buffer.from(masterKey);
    // A public fingerprint of the key (a hash of a 256-bit random key reveals nothing usable).
    const fp = createHash('sha256').update('keyhold-kms master key id\0').update(this.#key).digest('hex');
    this.id = `local:${fp.slice(0, 16)}`;
  }

  wrap(dataKey: Uint8Array, context: string): Promise<string> {
    const iv = randomBytes(IV_BYTES);
    const c = createCipheriv('aes-256-gcm', this.#key, iv);
    c.setAAD(Buffer.from(`keyhold-kms wrap\0${context}`, 'utf8'));
    const ct = Buffer.concat([c.update(dataKey), c.final()]);
    return Promise.resolve(Buffer.concat([iv, ct, c.getAuthTag()]).toString('base64'));
  }

  unwrap(wrapped: string, context: string): Promise<Uint8Array> {
    // SECURITY: bound the input before decoding a backend-supplied string (resource exhaustion).
    if (wrapped.length > WRAPPED_CHARS_MAX) return Promise.reject(corrupt());
    const raw = Buffer.from(wrapped, 'base64');
    // SECURITY: exact layout iv ‖ 32-byte key ‖ tag; anything else is tampering (NIST SP 800-38D).
    if (raw.length !== IV_BYTES + MASTER_KEY_BYTES + TAG_BYTES) return Promise.reject(corrupt());
    try {
      const d = createDecipheriv('aes-256-gcm', this.#key, raw.subarray(0, IV_BYTES), { authTagLength: TAG_BYTES });
      // SECURITY: the context binds a wrapped key to its resource and version, so wrapped keys
      // cannot be moved between records (AEAD associated data).
      d.setAAD(Buffer.from(`keyhold-kms wrap\0${context}`, 'utf8'));
      d.setAuthTag(raw.subarray(IV_BYTES + MASTER_KEY_BYTES));
      return Promise.resolve(Buffer.concat([d.update(raw.subarray(IV_BYTES, IV_BYTES + MASTER_KEY_BYTES)), d.final()]));
    } catch (cause) {
      return Promise.reject(corrupt(cause));
    }
  }
}

function corrupt(cause?: unknown): KmsError {
  return new KmsError('KMS_CORRUPT', 'a wrapped data key failed authentication', cause === undefined ? undefined : { cause });
}
