import { KbsError } from '../../errors.js';
import type { ReferenceSnapshot, ReferenceValueState } from '../ports.js';
import { checkReferenceEntries, checkReferenceName, decodeStoredReference, MAX_REFERENCE_TOTAL_CHARS, referenceSnapshot } from '../reference-values.js';
import { corrupt, type RedisContext } from './redis-connection.js';
import { VersionedSnapshot } from './versioned-snapshot.js';
import { BUMP_VERSION, versionBase } from './version-counter.js';

/**
 * Reference values under one hash tag `{P:refs}`:
 *   `{P:refs}:v`     HASH name → JSON array of values
 *   `{P:refs}:ver`   version, incremented by every write in the same script (from a random base)
 *   `{P:refs}:size`  characters stored (names + values), bounded like the embedded file
 * Each process caches the content with its version; `snapshot()` costs one GET of the version and
 * reloads (one atomic read of both) only when it moved.
 */
/** KEYS v ver size; ARGV maxChars base name1 json1 name2 json2 ... Returns {1, version} or {0} when too large. */
const SET_LUA = `${BUMP_VERSION}
local size = tonumber(redis.call('GET', KEYS[3]) or '0') or 0
for i = 3, #ARGV - 1, 2 do
  local old = redis.call('HSTRLEN', KEYS[1], ARGV[i])
  if old > 0 then old = old + string.len(ARGV[i]) end
  size = size + string.len(ARGV[i]) + string.len(ARGV[i + 1]) - old
end
if size > tonumber(ARGV[1]) then return {0} end
for i = 3, #ARGV - 1, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
redis.call('SET', KEYS[3], size)
return {1, bump(KEYS[2], ARGV[2])}
`;

/** KEYS v ver size; ARGV name base. Returns {removed, version}. */
const DELETE_LUA = `${BUMP_VERSION}
local old = redis.call('HSTRLEN', KEYS[1], ARGV[1])
if redis.call('HDEL', KEYS[1], ARGV[1]) == 0 then return {0, 0} end
redis.call('DECRBY', KEYS[3], old + string.len(ARGV[1]))
return {1, bump(KEYS[2], ARGV[2])}
`;

/** KEYS v ver. Returns {version, {name, json, ...}} in one atomic read. */
const READ_LUA = `
return {tonumber(redis.call('GET', KEYS[2]) or '0') or 0, redis.call('HGETALL', KEYS[1])}
`;

interface Commands {
  khRefSet(v: string, ver: string, size: string, max: number, base: string, ...pairs: string[]): Promise<[number, number?]>;
  khRefDelete(v: string, ver: string, size: string, name: string, base: string): Promise<[number, number]>;
  khRefRead(v: string, ver: string): Promise<[number, string[]]>;
}

export class RedisReferenceValues implements ReferenceValueState {
  readonly #ctx: RedisContext;
  readonly #client: Commands;
  readonly #v: string;
  readonly #ver: string;
  readonly #size: string;
  readonly #snapshot: VersionedSnapshot<ReferenceSnapshot>;

  constructor(ctx: RedisContext) {
    this.#ctx = ctx;
    ctx.client.defineCommand('khRefSet', { numberOfKeys: 3, lua: SET_LUA });
    ctx.client.defineCommand('khRefDelete', { numberOfKeys: 3, lua: DELETE_LUA });
    ctx.client.defineCommand('khRefRead', { numberOfKeys: 2, lua: READ_LUA });
    this.#client = ctx.client as unknown as Commands;
    const tag = ctx.tag('refs');
    this.#v = `${tag}:v`;
    this.#ver = `${tag}:ver`;
    this.#snapshot = new VersionedSnapshot(ctx, this.#ver, 'reference value', () => this.#load());
    this.#size = `${tag}:size`;
  }

  snapshot(): Promise<ReferenceSnapshot> {
    return this.#snapshot.get();
  }

  async #load(): Promise<ReferenceSnapshot> {
    const [version, flat] = await this.#ctx.op(() => this.#client.khRefRead(this.#v, this.#ver));
    const values = new Map<string, readonly string[]>();
    for (let i = 0; i < flat.length; i += 2) {
      const name = flat[i]!;
      let parsed: unknown;
      try {
        parsed = JSON.parse(flat[i + 1]!);
      } catch (cause) {
        throw corrupt(`reference values of ${name.slice(0, 64)}`, cause);
      }
      values.set(name, decodeStoredReference(name, parsed));
    }
    const snap = referenceSnapshot(Number(version), values);
    return snap;
  }

  async set(entries: Readonly<Record<string, readonly string[]>>): Promise<void> {
    const checked = checkReferenceEntries(entries);
    if (checked.size === 0) return;
    const pairs: string[] = [];
    for (const [k, v] of checked) pairs.push(k, JSON.stringify(v));
    const [ok] = await this.#ctx.op(() => this.#client.khRefSet(this.#v, this.#ver, this.#size, MAX_REFERENCE_TOTAL_CHARS, versionBase(), ...pairs));
    // SECURITY: the stored total is bounded, so writes cannot grow Redis (and every snapshot) without limit.
    if (ok !== 1) throw new KbsError('PAYLOAD_TOO_LARGE', 'reference values would exceed 64 MiB in total');
  }

  async delete(name: string): Promise<boolean> {
    checkReferenceName(name);
    const [removed] = await this.#ctx.op(() => this.#client.khRefDelete(this.#v, this.#ver, this.#size, name, versionBase()));
    return removed === 1;
  }
}
