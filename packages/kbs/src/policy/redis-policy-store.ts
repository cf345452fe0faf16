import { isValidResourceSegment } from '@keyhold/protocol';
import { POLICY_HISTORY_LIMIT, PolicyError, parsePolicyStoreSnapshot, policyKey, type PolicyDocument, type PolicyRef, type PolicyStore, type StoredPolicy, type PolicyPutOptions } from '@keyhold/policy';
import type { Cluster, Redis } from 'ioredis';
import { checkRedisStoreOptions, withRedisDeadline } from '../storage/redis-operation.js';

/**
 * Compare-and-set put. KEYS[1] hash slot key → `<version>\n<json>`, KEYS[2] hash slot key → last
 * version ever used, KEYS[3] the slot's history list (newest first, trimmed to ARGV[4] entries).
 * ARGV[1] slot key, ARGV[2] expected current version ('' for any), ARGV[3] json.
 * Returns {1, version} when stored, {0, currentVersion} on a version conflict.
 */
const PUT_LUA = `
local cur = redis.call('HGET', KEYS[1], ARGV[1])
local curv = 0
if cur then
  curv = tonumber(string.match(cur, '^(%d+)\\n'))
  if not curv then return redis.error_reply('KHCORRUPT stored policy has no version') end
end
if ARGV[2] ~= '' and tonumber(ARGV[2]) ~= curv then return {0, curv} end
local last = tonumber(redis.call('HGET', KEYS[2], ARGV[1]) or '0') or 0
if curv > last then last = curv end
local v = last + 1
redis.call('HSET', KEYS[2], ARGV[1], v)
redis.call('HSET', KEYS[1], ARGV[1], v .. '\\n' .. ARGV[3])
redis.call('LPUSH', KEYS[3], v .. '\\n' .. ARGV[3])
redis.call('LTRIM', KEYS[3], 0, tonumber(ARGV[4]) - 1)
return {1, v}
`;

interface ScriptCommands {
  khPolicyPut(docs: string, versions: string, history: string, slot: string, expected: string, json: string, historyLimit: string): Promise<[number, number]>;
}
type Client = (Redis | Cluster) & ScriptCommands;

export interface RedisPolicyStoreOptions {
  /** Key namespace (default `kh`): keys are `{<prefix>:policies}:doc` and `{<prefix>:policies}:ver`, one hash slot. */
  readonly keyPrefix?: string;
  /** Bound on one store operation end to end (default 1500 ms); beyond it, POLICY_STORE_FAILED. */
  readonly operationTimeoutMs?: number;
  readonly now?: () => Date;
}

/** Same bound as the file store's whole file, per stored policy entry. */
const MAX_ENTRY_CHARS = 16 * 1024 * 1024;
const MAX_POLICIES = 100_000;
const STORED = /^([1-9][0-9]{0,15})\n/;

/**
 * A PolicyStore in Redis (standalone or Cluster), shared by every KBS process using it. Versions
 * are assigned by a Lua script from a per-slot counter that survives deletes (never reused), and
 * `expectedVersion` is checked in the same script (compare-and-set across processes). Reads go to
 * Redis each time, so a put by one process is seen by all. Redis down or slow → POLICY_STORE_FAILED.
 */
export class RedisPolicyStore implements PolicyStore {
  readonly #client: Client;
  readonly #docKey: string;
  readonly #verKey: string;
  readonly #histPrefix: string;
  readonly #opTimeoutMs: number;
  readonly #now: () => Date;

  constructor(client: Redis | Cluster, options: RedisPolicyStoreOptions = {}) {
    const { prefix, timeoutMs: ms } = checkRedisStoreOptions('redis policy store', options);
    client.defineCommand('khPolicyPut', { numberOfKeys: 3, lua: PUT_LUA });
    this.#client = client as Client;
    this.#docKey = `{${prefix}:policies}:doc`;
    this.#verKey = `{${prefix}:policies}:ver`;
    this.#histPrefix = `{${prefix}:policies}:hist:`;
    this.#opTimeoutMs = ms;
    this.#now = options.now ?? (() => new Date());
  }

  async get(ref: PolicyRef): Promise<StoredPolicy | undefined> {
    checkRef(ref);
    const key = policyKey(ref);
    const s = await this.#op(() => this.#client.hget(this.#docKey, key));
    return s === null ? undefined : decodeEntry(key, s);
  }

  async put(ref: PolicyRef, document: PolicyDocument, options: PolicyPutOptions = {}): Promise<StoredPolicy> {
    checkRef(ref, document);
    const key = policyKey(ref);
    const body = { ref, updatedAt: this.#now().toISOString(), ...(options.updatedBy === undefined ? {} : { updatedBy: options.updatedBy }), document };
    const expected = options.expectedVersion === undefined ? '' : String(options.expectedVersion);
    const [ok, version] = await this.#op(() => this.#client.khPolicyPut(this.#docKey, this.#verKey, this.#histPrefix + key, key, expected, JSON.stringify(body), String(POLICY_HISTORY_LIMIT)));
    // SECURITY: optimistic concurrency across every KBS process sharing this Redis, so two admins
    // editing one policy cannot silently overwrite each other's change (lost update).
    if (ok !== 1) throw new PolicyError('POLICY_VERSION_CONFLICT', `policy ${key} is at version ${version}, not ${expected}`);
    return { ...body, version };
  }

  async delete(ref: PolicyRef): Promise<boolean> {
    checkRef(ref);
    return (await this.#op(() => this.#client.hdel(this.#docKey, policyKey(ref)))) > 0;
  }

  async list(): Promise<readonly StoredPolicy[]> {
    const all = await this.#op(async () => {
      // SECURITY: bound what is fetched from the backend before fetching it (resource exhaustion).
      if ((await this.#client.hlen(this.#docKey)) > MAX_POLICIES) throw new PolicyError('POLICY_STORE_FAILED', 'policy store holds too many policies');
      return this.#client.hgetall(this.#docKey);
    });
    return Object.entries(all)
      .map(([key, s]) => decodeEntry(key, s))
      .sort((a, b) => policyKey(a.ref).localeCompare(policyKey(b.ref)));
  }

  /** The slot's recent versions, newest first (kept by the put script, same hash slot as the policies). */
  async history(ref: PolicyRef, limit: number = POLICY_HISTORY_LIMIT): Promise<readonly StoredPolicy[]> {
    checkRef(ref);
    const key = policyKey(ref);
    const n = Math.max(1, Math.min(POLICY_HISTORY_LIMIT, Math.floor(limit)));
    const entries = await this.#op(() => this.#client.lrange(this.#histPrefix + key, 0, n - 1));
    // SECURITY: each entry is validated like a current one and must belong to this slot (a tampered list).
    return entries.map((s) => decodeEntry(key, s));
  }

  #op<T>(fn: () => Promise<T>): Promise<T> {
    return withRedisDeadline(this.#opTimeoutMs, fn, (cause) =>
      cause instanceof PolicyError ? cause : new PolicyError('POLICY_STORE_FAILED', 'redis policy store is unavailable', { cause }),
    );
  }

}

/** Decode one stored entry through the policy package's snapshot validation. */
function decodeEntry(key: string, s: string): StoredPolicy {
  const bad = (why: string, cause?: unknown): PolicyError => new PolicyError('POLICY_STORE_FAILED', `policy store content is corrupt: ${why}`, { cause });
  // SECURITY: backend-supplied data is bounded before parsing (resource exhaustion by a tampered store).
  if (s.length > MAX_ENTRY_CHARS) throw bad('entry too large');
  const m = STORED.exec(s);
  if (m === null) throw bad('entry has no version');
  let body: unknown;
  try {
    body = JSON.parse(s.slice(m[0].length));
  } catch (cause) {
    throw bad('entry is not JSON', cause);
  }
  if (typeof body !== 'object' || body === null || Array.isArray(body)) throw bad('entry is not an object');
  const [p] = parsePolicyStoreSnapshot({ format: 1, policies: [{ ...body, version: Number(m[1]) }], lastVersions: {} }).policies;
  // SECURITY: an entry moved to another slot in Redis (e.g. a deny-all copied over a repository's
  // policy key, or an attestation rule under a resource key) is refused, not applied to that slot.
  if (p === undefined || policyKey(p.ref) !== key) throw bad('entry does not belong to its slot');
  return p;
}

function checkRef(ref: PolicyRef, document?: PolicyDocument): void {
  // SECURITY: repository names become key fields; only valid resource segments are accepted (path/key injection).
  if (ref.kind === 'resource' && ref.repository !== undefined && !isValidResourceSegment(ref.repository)) {
    throw new PolicyError('POLICY_INVALID_DOCUMENT', 'repository must match ^[A-Za-z0-9_-][A-Za-z0-9_.-]*$');
  }
  if (document === undefined) return;
  // SECURITY: a document can only fill a slot of its own kind (an attestation rule must never be
  // run as a release decision, or the reverse).
  if (document.kind !== ref.kind) throw new PolicyError('POLICY_INVALID_DOCUMENT', `a ${document.kind} policy cannot be stored as a ${ref.kind} policy`);
  if (ref.kind === 'attestation' && document.id !== ref.id) throw new PolicyError('POLICY_INVALID_DOCUMENT', 'attestation policy id does not match its slot');
}
