import { KmsError } from '../errors.js';
import type { KeyWrapper } from '../key-wrapper.js';
import { checkVaultPath, VaultClient, type VaultConnection } from './vault-client.js';

export interface VaultTransitConfig extends VaultConnection {
  /** Mount path of the Transit engine (default `transit`). */
  readonly mount?: string;
  /** Name of the Transit key (e.g. an aes256-gcm96 key); Transit key rotation is supported. */
  readonly keyName: string;
}

const MAX_CIPHERTEXT_CHARS = 4096;

/**
 * Wraps data keys with Vault Transit (`encrypt`/`decrypt` on a named key), so the master key
 * never leaves Vault. The record's own AEAD binds name and version, so a wrapped key moved to
 * another record fails there; Transit's `context` is not used (it requires derived keys).
 */
export class VaultTransitKeyWrapper implements KeyWrapper {
  readonly id: string;
  readonly #client: VaultClient;
  readonly #mount: string;
  readonly #key: string;

  constructor(config: VaultTransitConfig) {
    this.#mount = checkVaultPath(config.mount ?? 'transit', 'transit mount');
    this.#key = checkVaultPath(config.keyName, 'transit key name');
    if (this.#key.includes('/')) throw new TypeError('vault: transit key name is one segment');
    this.#client = new VaultClient(config);
    this.id = `vault-transit:${this.#mount}/${this.#key}`;
  }

  async wrap(dataKey: Uint8Array, _context: string): Promise<string> {
    const res = await this.#client.call('POST', `${this.#mount}/encrypt/${this.#key}`, { plaintext: Buffer.from(dataKey).toString('base64') });
    const ct = (res.body as { data?: { ciphertext?: unknown } } | undefined)?.data?.ciphertext;
    if (res.status !== 200 || typeof ct !== 'string') throw new KmsError('KMS_BACKEND_ERROR', `vault transit encrypt failed (HTTP ${res.status})`);
    return ct;
  }

  async unwrap(wrapped: string, _context: string): Promise<Uint8Array> {
    // SECURITY: a transit ciphertext has a fixed shape and bounded size (input validation before
    // sending backend-stored data to another service).
    if (wrapped.length > MAX_CIPHERTEXT_CHARS || !/^vault:v[0-9]+:[A-Za-z0-9+/=]+$/.test(wrapped)) {
      throw new KmsError('KMS_CORRUPT', 'a wrapped data key is malformed');
    }
    const res = await this.#client.call('POST', `${this.#mount}/decrypt/${this.#key}`, { ciphertext: wrapped });
    // Transit answers 400 when the ciphertext fails authentication or names an unknown key version.
    if (res.status === 400) throw new KmsError('KMS_CORRUPT', 'a wrapped data key failed authentication');
    const pt = (res.body as { data?: { plaintext?: unknown } } | undefined)?.data?.plaintext;
    if (res.status !== 200 || typeof pt !== 'string') throw new KmsError('KMS_BACKEND_ERROR', `vault transit decrypt failed (HTTP ${res.status})`);
    return Buffer.from(pt, 'base64');
  }

  close(): Promise<void> {
    return this.#client.close();
  }
}
