import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { KmsError } from '../errors.js';
import type { KeyWrapper } from '../key-wrapper.js';
import type { SecretMetadata } from '../secret-store.js';
import { decodeMetadata, type StoredMeta } from './stored-meta.js';

/**
 * A stored version: flat string fields, kept as JSON in a file or Redis hash, or as Vault KV data.
 * `n`, `v` and `m` (name, version, metadata JSON) are in clear so listings need no key; in a sealed
 * record they are bound into the AEAD associated data.
 */
export type RecordFields = Readonly<Record<string, string>>;

export interface RecordCodec {
  encode(name: string, version: number, meta: StoredMeta, value: Uint8Array): Promise<RecordFields>;
  /** Authenticate and decode; KMS_CORRUPT on any mismatch. */
  decode(name: string, version: number, fields: RecordFields): Promise<{ value: Uint8Array; metadata: SecretMetadata }>;
}

const FORMAT_SEALED = 'kh-sealed-1';
const FORMAT_PLAIN = 'kh-plain-1';
const IV_BYTES = 12;
const TAG_BYTES = 16;
const DATA_KEY_BYTES = 32;

/** Unauthenticated metadata of a stored record (for list/versions); KMS_CORRUPT if malformed. */
export function readRecordMetadata(name: string, version: number, fields: RecordFields): SecretMetadata {
  checkLocation(name, version, fields);
  return decodeMetadata(name, version, fields.m as string);
}

function checkLocation(name: string, version: number, fields: RecordFields): void {
  // SECURITY: a record must name the slot it is read from, so a record copied to another name or
  // version is refused even before decryption (record swapping).
  if (fields.n !== name || fields.v !== String(version) || typeof fields.m !== 'string') {
    throw new KmsError('KMS_CORRUPT', `stored record for ${name} v${version} does not match its location`);
  }
}

function aad(name: string, version: number, metaJson: string): Buffer {
  return Buffer.from(`keyhold-kms record\0${name}\0${version}\0${metaJson}`, 'utf8');
}

/**
 * Envelope encryption: a fresh 32-byte data key and 12-byte IV per value, AES-256-GCM with the
 * name, version and metadata as associated data, the data key wrapped by a KeyWrapper. The backend
 * stores only ciphertext and the wrapped key.
 */
export class SealedRecordCodec implements RecordCodec {
  constructor(private readonly wrapper: KeyWrapper) {}

  async encode(name: string, version: number, meta: StoredMeta, value: Uint8Array): Promise<RecordFields> {
    const m = JSON.stringify(meta);
    const dataKey = randomBytes(DATA_KEY_BYTES);
    try {
      const iv = randomBytes(IV_BYTES);
      const c = createCipheriv('aes-256-gcm', dataKey, iv);
      c.setAAD(aad(name, version, m));
      const ct = Buffer.concat([c.update(value), c.final()]);
      const k = await this.wrapper.wrap(dataKey, `${name}#${version}`);
      return {
        f: FORMAT_SEALED,
        n: name,
        v: String(version),
        m,
        w: this.wrapper.id,
        k,
        i: iv.toString('base64'),
        c: ct.toString('base64'),
        t: c.getAuthTag().toString('base64'),
      };
    } finally {
      dataKey.fill(0);
    }
  }

  async decode(name: string, version: number, fields: RecordFields): Promise<{ value: Uint8Array; metadata: SecretMetadata }> {
    checkLocation(name, version, fields);
    const { m, w, k, i, c, t } = fields;
    if (fields.f !== FORMAT_SEALED || typeof k !== 'string' || typeof i !== 'string' || typeof c !== 'string' || typeof t !== 'string') {
      throw new KmsError('KMS_CORRUPT', `stored record for ${name} v${version} is not a sealed record`);
    }
    // SECURITY: a value sealed under another wrapping key (wrong master key, a record from another
    // deployment) is refused with a clear code instead of a generic failure.
    if (w !== this.wrapper.id) {
      throw new KmsError('KMS_CORRUPT', `stored record for ${name} v${version} was sealed under another key (${String(w)})`);
    }
    const iv = Buffer.from(i, 'base64');
    const tag = Buffer.from(t, 'base64');
    // SECURITY: exact IV and tag lengths; a truncated tag would weaken GCM authentication (SP 800-38D §5.2.1.2).
    if (iv.length !== IV_BYTES || tag.length !== TAG_BYTES) {
      throw new KmsError('KMS_CORRUPT', `stored record for ${name} v${version} has a malformed IV or tag`);
    }
    const metadata = decodeMetadata(name, version, m as string);
    const dataKey = await this.wrapper.unwrap(k, `${name}#${version}`);
    try {
      if (dataKey.length !== DATA_KEY_BYTES) throw new KmsError('KMS_CORRUPT', 'unwrapped data key has the wrong length');
      const d = createDecipheriv('aes-256-gcm', dataKey, iv, { authTagLength: TAG_BYTES });
      // SECURITY: name, version and metadata are authenticated with the value, so ciphertexts cannot
      // be swapped between names or versions and labels/policy cannot be altered (AEAD AAD).
      d.setAAD(aad(name, version, m as string));
      d.setAuthTag(tag);
      const value = Buffer.concat([d.update(Buffer.from(c, 'base64')), d.final()]);
      return { value, metadata };
    } catch (cause) {
      if (cause instanceof KmsError) throw cause;
      throw new KmsError('KMS_CORRUPT', `stored record for ${name} v${version} failed authentication`, { cause });
    } finally {
      dataKey.fill(0);
    }
  }
}

/**
 * Values stored as base64 without adapter-side encryption, for backends that are themselves a
 * secret store encrypting at rest (Vault KV). Pass a KeyWrapper to the Vault backend to seal instead.
 */
export class PlainRecordCodec implements RecordCodec {
  encode(name: string, version: number, meta: StoredMeta, value: Uint8Array): Promise<RecordFields> {
    return Promise.resolve({ f: FORMAT_PLAIN, n: name, v: String(version), m: JSON.stringify(meta), value: Buffer.from(value).toString('base64') });
  }

  decode(name: string, version: number, fields: RecordFields): Promise<{ value: Uint8Array; metadata: SecretMetadata }> {
    checkLocation(name, version, fields);
    if (fields.f !== FORMAT_PLAIN || typeof fields.value !== 'string') {
      return Promise.reject(new KmsError('KMS_CORRUPT', `stored record for ${name} v${version} is not a plain record`));
    }
    const metadata = decodeMetadata(name, version, fields.m as string);
    return Promise.resolve({ value: Buffer.from(fields.value, 'base64'), metadata });
  }
}
