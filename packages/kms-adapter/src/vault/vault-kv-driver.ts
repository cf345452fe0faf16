import { KmsError } from '../errors.js';
import { isValidSegment, MAX_VERSION } from '../resource-name.js';
import type { RecordFields } from '../internal/record-codec.js';
import type { StorageDriver } from '../internal/versioned-store.js';
import type { VaultClient } from './vault-client.js';

const VERSION_KEY = /^[1-9][0-9]{0,8}$/;
const MAX_FIELD_CHARS = 4 * 1024 * 1024;

/**
 * Records in Vault KV (v1 or v2). One KV entry per version:
 *   `<mount>/<prefix>/<repo>/<type>/<tag>/<version>`   data = the record's string fields
 * With KV v2, a version is created with `cas: 0` (create-only), which makes version bumps atomic
 * across processes; KV v1 has no check-and-set, so with v1 only writers in one process are
 * serialised (run one KBS writer, or use v2). Pruning deletes whole entries (v2: metadata delete).
 */
export class VaultKvDriver implements StorageDriver {
  readonly backend = 'vault' as const;
  readonly #client: VaultClient;
  readonly #mount: string;
  readonly #prefix: string;
  readonly #v2: boolean;

  constructor(client: VaultClient, mount: string, prefix: string, kvVersion: 1 | 2) {
    this.#client = client;
    this.#mount = mount;
    this.#prefix = prefix;
    this.#v2 = kvVersion === 2;
  }

  #data(rel: string): string {
    return this.#v2 ? `${this.#mount}/data/${this.#prefix}/${rel}` : `${this.#mount}/${this.#prefix}/${rel}`;
  }

  #meta(rel: string): string {
    return this.#v2 ? `${this.#mount}/metadata/${this.#prefix}/${rel}` : `${this.#mount}/${this.#prefix}/${rel}`;
  }

  async #list(rel: string): Promise<string[]> {
    const base = this.#v2 ? `${this.#mount}/metadata/${this.#prefix}` : `${this.#mount}/${this.#prefix}`;
    const res = await this.#client.call('GET', `${base}/${rel}${rel === '' ? '' : '/'}?list=true`);
    if (res.status === 404) return [];
    if (res.status !== 200) throw unexpected(res.status);
    const keys = (res.body as { data?: { keys?: unknown } } | undefined)?.data?.keys;
    if (!Array.isArray(keys) || !keys.every((k): k is string => typeof k === 'string')) throw unexpected(res.status);
    return keys;
  }

  async #versionNumbers(name: string): Promise<number[]> {
    // SECURITY: only canonical version numbers are used; other entries are ignored (hostile backend data).
    return (await this.#list(name))
      .filter((k) => VERSION_KEY.test(k))
      .map(Number)
      .sort((a, b) => a - b);
  }

  async latestVersion(name: string): Promise<number> {
    return (await this.#versionNumbers(name)).at(-1) ?? 0;
  }

  async readLatest(name: string): Promise<{ version: number; fields: RecordFields } | undefined> {
    for (let i = 0; i < 3; i++) {
      const version = await this.latestVersion(name);
      if (version === 0) return undefined;
      const fields = await this.read(name, version);
      if (fields !== undefined) return { version, fields };
    }
    return undefined;
  }

  async read(name: string, version: number): Promise<RecordFields | undefined> {
    const res = await this.#client.call('GET', this.#data(`${name}/${version}`));
    if (res.status === 404) return undefined;
    if (res.status !== 200) throw unexpected(res.status);
    const outer = (res.body as { data?: unknown } | undefined)?.data;
    const data = this.#v2 ? (outer as { data?: unknown } | undefined)?.data : outer;
    // KV v2 returns data: null for a soft-deleted version.
    if (data === null) return undefined;
    // SECURITY: a record is a flat object of bounded strings; anything else is tampering.
    if (typeof data !== 'object' || data === undefined || Array.isArray(data)) throw corrupt(name, version);
    for (const v of Object.values(data)) if (typeof v !== 'string' || v.length > MAX_FIELD_CHARS) throw corrupt(name, version);
    return data as RecordFields;
  }

  async readAll(name: string): Promise<Array<{ version: number; fields: RecordFields }>> {
    const out: Array<{ version: number; fields: RecordFields }> = [];
    for (const version of await this.#versionNumbers(name)) {
      const fields = await this.read(name, version);
      if (fields !== undefined) out.push({ version, fields });
    }
    return out;
  }

  async names(): Promise<string[]> {
    // SECURITY: only folder entries that are valid segments are descended into (no injection of
    // names through odd keys in the mount).
    const folders = (keys: string[]): string[] => keys.filter((k) => k.endsWith('/') && isValidSegment(k.slice(0, -1))).map((k) => k.slice(0, -1));
    const out: string[] = [];
    for (const repo of folders(await this.#list(''))) {
      for (const type of folders(await this.#list(repo))) {
        for (const tag of folders(await this.#list(`${repo}/${type}`))) {
          const name = `${repo}/${type}/${tag}`;
          if ((await this.latestVersion(name)) > 0) out.push(name);
        }
      }
    }
    return out;
  }

  async commit(name: string, expected: number, fields: RecordFields, keep: number): Promise<boolean> {
    const version = expected + 1;
    if (version > MAX_VERSION) return false;
    if (this.#v2) {
      const res = await this.#client.call('POST', this.#data(`${name}/${version}`), { options: { cas: 0 }, data: fields });
      // 400 "check-and-set parameter did not match": another writer created this version first.
      if (res.status === 400) return false;
      if (res.status !== 200 && res.status !== 204) throw unexpected(res.status);
    } else {
      if ((await this.read(name, version)) !== undefined) return false;
      const res = await this.#client.call('POST', this.#data(`${name}/${version}`), fields);
      if (res.status !== 200 && res.status !== 204) throw unexpected(res.status);
    }
    const all = await this.#versionNumbers(name);
    for (const old of all.slice(0, Math.max(0, all.length - keep))) {
      await this.#client.call('DELETE', this.#meta(`${name}/${old}`));
    }
    return true;
  }

  async remove(name: string): Promise<boolean> {
    const all = await this.#versionNumbers(name);
    // Oldest first: an interrupted delete leaves the resource at its latest value, not a gap.
    for (const v of all) await this.#client.call('DELETE', this.#meta(`${name}/${v}`));
    return all.length > 0;
  }

  async close(): Promise<void> {
    await this.#client.close();
  }
}

function corrupt(name: string, version: number): KmsError {
  return new KmsError('KMS_CORRUPT', `stored record for ${name} v${version} is malformed`);
}

function unexpected(status: number): KmsError {
  return new KmsError('KMS_BACKEND_ERROR', `vault answered HTTP ${status} unexpectedly`);
}
