import { normaliseEkHash } from '../../identity/ek-hash.js';
import { checkNote } from '../embedded/embedded-ek-allowlist.js';
import type { EkAllowlistEntry, EkAllowlistState } from '../ports.js';
import { corrupt, type RedisContext } from './redis-connection.js';

const MAX_ENTRIES = 1_000_000;

/** The EK allowlist: one hash `{P:ekallow}` EK hash → `{"addedAt","note"?}`; every operation is one command. */
export class RedisEkAllowlist implements EkAllowlistState {
  readonly #ctx: RedisContext;
  readonly #key: string;

  constructor(ctx: RedisContext) {
    this.#ctx = ctx;
    this.#key = ctx.tag('ekallow');
  }

  async has(ekHash: string): Promise<boolean> {
    const h = normaliseEkHash(ekHash);
    return (await this.#ctx.op(() => this.#ctx.client.hexists(this.#key, h))) === 1;
  }

  async add(ekHash: string, meta: { readonly note?: string; readonly now?: Date } = {}): Promise<void> {
    const h = normaliseEkHash(ekHash);
    checkNote(meta.note);
    const entry = { addedAt: (meta.now ?? new Date()).toISOString(), ...(meta.note !== undefined ? { note: meta.note } : {}) };
    await this.#ctx.op(() => this.#ctx.client.hset(this.#key, h, JSON.stringify(entry)));
  }

  async remove(ekHash: string): Promise<boolean> {
    const h = normaliseEkHash(ekHash);
    return (await this.#ctx.op(() => this.#ctx.client.hdel(this.#key, h))) === 1;
  }

  async list(): Promise<readonly EkAllowlistEntry[]> {
    const all = await this.#ctx.op(async () => {
      // SECURITY: bound what is fetched from the backend before fetching it (resource exhaustion).
      if ((await this.#ctx.client.hlen(this.#key)) > MAX_ENTRIES) throw corrupt('EK allowlist holds too many entries');
      return this.#ctx.client.hgetall(this.#key);
    });
    return Object.entries(all)
      .map(([ekHash, json]) => decodeEntry(ekHash, json))
      .sort((a, b) => (a.ekHash < b.ekHash ? -1 : 1));
  }
}

function decodeEntry(ekHash: string, json: string): EkAllowlistEntry {
  if (!/^[0-9a-f]{64}$/.test(ekHash) || json.length > 4096) throw corrupt('EK allowlist entry');
  let v: { addedAt?: unknown; note?: unknown };
  try {
    v = JSON.parse(json) as typeof v;
  } catch (cause) {
    throw corrupt('EK allowlist entry', cause);
  }
  if (typeof v !== 'object' || v === null || typeof v.addedAt !== 'string' || (v.note !== undefined && typeof v.note !== 'string')) throw corrupt('EK allowlist entry');
  return { ekHash, addedAt: v.addedAt, ...(v.note !== undefined ? { note: v.note as string } : {}) };
}
