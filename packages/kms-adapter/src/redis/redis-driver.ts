import { Cluster, type Redis } from 'ioredis';
import { KmsError } from '../errors.js';
import { MAX_VERSION, parseResourceName } from '../resource-name.js';
import type { RecordFields } from '../internal/record-codec.js';
import type { StorageDriver } from '../internal/versioned-store.js';
import { COMMIT_LUA, READ_LATEST_LUA } from './lua-scripts.js';

interface ScriptCommands {
  khCommit(idx: string, recs: string, expected: string, record: string, keep: string): Promise<number>;
  khReadLatest(idx: string, recs: string): Promise<[string, string | null] | null>;
}
type Client = (Redis | Cluster) & ScriptCommands;

const VERSION_TEXT = /^[1-9][0-9]{0,8}$/;

/**
 * Sealed records in Redis (standalone or Cluster). Key layout per resource, one hash slot:
 *   `{<prefix>:<repo>/<type>/<tag>}:i`  ZSET of retained versions
 *   `{<prefix>:<repo>/<type>/<tag>}:r`  HASH version → sealed record JSON
 * Version bumps and pruning run in one Lua script (atomic across all clients and processes).
 * Every operation is bounded by `operationTimeoutMs` and fails with KMS_UNAVAILABLE when Redis is
 * unreachable; the client keeps reconnecting in the background, so the same store recovers.
 */
export class RedisDriver implements StorageDriver {
  readonly backend = 'redis' as const;
  readonly #client: Client;
  readonly #prefix: string;
  readonly #opTimeoutMs: number;
  readonly #maxRecordChars: number;

  constructor(client: Redis | Cluster, prefix: string, opTimeoutMs: number, maxRecordChars: number) {
    client.defineCommand('khCommit', { numberOfKeys: 2, lua: COMMIT_LUA });
    client.defineCommand('khReadLatest', { numberOfKeys: 2, lua: READ_LATEST_LUA });
    this.#client = client as Client;
    this.#prefix = prefix;
    this.#opTimeoutMs = opTimeoutMs;
    this.#maxRecordChars = maxRecordChars;
  }

  #keys(name: string): [string, string] {
    const tag = `{${this.#prefix}:${name}}`;
    return [`${tag}:i`, `${tag}:r`];
  }

  latestVersion(name: string): Promise<number> {
    const [idx] = this.#keys(name);
    return this.#op(async () => {
      const top = await this.#client.zrange(idx, -1, -1);
      return top.length === 0 ? 0 : parseVersion(top[0], name);
    });
  }

  readLatest(name: string): Promise<{ version: number; fields: RecordFields } | undefined> {
    const [idx, recs] = this.#keys(name);
    return this.#op(async () => {
      const r = await this.#client.khReadLatest(idx, recs);
      if (r === null) return undefined;
      const version = parseVersion(r[0], name);
      if (r[1] === null) throw corrupt(name, version);
      return { version, fields: this.#parse(r[1], name, version) };
    });
  }

  read(name: string, version: number): Promise<RecordFields | undefined> {
    const [, recs] = this.#keys(name);
    return this.#op(async () => {
      const s = await this.#client.hget(recs, String(version));
      return s === null ? undefined : this.#parse(s, name, version);
    });
  }

  readAll(name: string): Promise<Array<{ version: number; fields: RecordFields }>> {
    const [, recs] = this.#keys(name);
    return this.#op(async () => {
      const all = await this.#client.hgetall(recs);
      return Object.entries(all)
        .map(([v, s]) => {
          const version = parseVersion(v, name);
          return { version, fields: this.#parse(s, name, version) };
        })
        .sort((a, b) => a.version - b.version);
    });
  }

  names(): Promise<string[]> {
    return this.#op(async () => {
      const nodes = this.#client instanceof Cluster ? this.#client.nodes('master') : [this.#client as Redis];
      // A cluster that is not connected knows no masters: an empty scan would wrongly list nothing.
      if (this.#client instanceof Cluster && (this.#client.status !== 'ready' || nodes.length === 0)) {
        throw new KmsError('KMS_UNAVAILABLE', 'redis cluster is not ready');
      }
      const head = `{${this.#prefix}:`;
      const out: string[] = [];
      for (const node of nodes) {
        let cursor = '0';
        do {
          const [next, keys] = await node.scan(cursor, 'MATCH', `${head}*}:i`, 'COUNT', 1000);
          cursor = next;
          for (const k of keys) {
            const name = k.slice(head.length, -3);
            // SECURITY: only keys whose embedded name is a valid resource path are listed; stray or
            // hostile keys cannot inject names into the KBS (input validation at the boundary).
            try {
              out.push(parseResourceName(name).path);
            } catch {
              /* not ours */
            }
          }
        } while (cursor !== '0');
      }
      return out;
    });
  }

  commit(name: string, expected: number, fields: RecordFields, keep: number): Promise<boolean> {
    const [idx, recs] = this.#keys(name);
    if (expected + 1 > MAX_VERSION) return Promise.resolve(false);
    return this.#op(async () => (await this.#client.khCommit(idx, recs, String(expected), JSON.stringify(fields), String(keep))) !== 0);
  }

  remove(name: string): Promise<boolean> {
    const [idx, recs] = this.#keys(name);
    return this.#op(async () => (await this.#client.del(idx, recs)) > 0);
  }

  async close(): Promise<void> {
    try {
      await withTimeout(this.#client.quit(), this.#opTimeoutMs);
    } catch {
      this.#client.disconnect();
    }
  }

  #parse(s: string, name: string, version: number): RecordFields {
    // SECURITY: bound backend-supplied data before parsing it (resource exhaustion).
    if (s.length > this.#maxRecordChars) throw corrupt(name, version);
    let raw: unknown;
    try {
      raw = JSON.parse(s);
    } catch {
      throw corrupt(name, version);
    }
    // SECURITY: a record is a flat object of strings; anything else is corruption or tampering.
    if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw corrupt(name, version);
    for (const v of Object.values(raw)) if (typeof v !== 'string') throw corrupt(name, version);
    return raw as RecordFields;
  }

  async #op<T>(fn: () => Promise<T>): Promise<T> {
    try {
      return await withTimeout(fn(), this.#opTimeoutMs);
    } catch (err) {
      throw toKmsError(err);
    }
  }
}

function parseVersion(v: string | undefined, name: string): number {
  // SECURITY: version members come from the backend; only canonical positive integers are used.
  if (v === undefined || !VERSION_TEXT.test(v)) throw new KmsError('KMS_CORRUPT', `stored version index for ${name} is malformed`);
  return Number(v);
}

function corrupt(name: string, version: number): KmsError {
  return new KmsError('KMS_CORRUPT', `stored record for ${name} v${version} is malformed`);
}

class DeadlineExceeded extends Error {}

function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new DeadlineExceeded('operation timed out')), ms);
  });
  return Promise.race([p, deadline]).finally(() => clearTimeout(timer));
}

const UNAVAILABLE_REPLIES = /^(CLUSTERDOWN|LOADING|TRYAGAIN|MASTERDOWN|READONLY|BUSY|NOREPLICAS|OOM)\b/;

function toKmsError(err: unknown): KmsError {
  if (err instanceof KmsError) return err;
  const e = err as { name?: string; message?: string };
  // Redis replied with an error: unavailable states vs. anything else (a script or protocol fault).
  if (e.name === 'ReplyError' && !UNAVAILABLE_REPLIES.test(e.message ?? '')) {
    return new KmsError('KMS_BACKEND_ERROR', 'redis rejected a command', { cause: err });
  }
  // Connection refused/reset, command timeout, retries exhausted, cluster not ready, our deadline.
  return new KmsError('KMS_UNAVAILABLE', 'redis is unavailable', { cause: err });
}
