import { StateError } from '../errors.js';
import { checkListOptions } from '../embedded/embedded-nodes.js';
import { checkExpectedVersion, checkNodeId, checkNodeInput, decodeStoredNode, MAX_NODE_RECORD_CHARS, storedNode } from '../node-record.js';
import type { NodeLifecycle, NodeRecord, NodeRecordInput, NodeState } from '../ports.js';
import { corrupt, type RedisContext } from './redis-connection.js';

const LIFECYCLES: readonly NodeLifecycle[] = ['active', 'stale', 'banned', 'revoked'];

/**
 * Node records, all under one hash tag `{P:nodes}` (one slot, so a compare-and-swap and its
 * indexes change together):
 *   `{P:nodes}:r`        HASH  node id → `<version>\n<record JSON>`
 *   `{P:nodes}:all`      ZSET  node ids (score 0: lexicographic order, for paging)
 *   `{P:nodes}:st:<s>`   ZSET  node ids per stored lifecycle state
 */
const VERSION_OF = `
local function version_of(cur)
  if not cur then return 0 end
  local nl = string.find(cur, '\\n', 1, true)
  local v = nl and tonumber(string.sub(cur, 1, nl - 1))
  if not v then return nil end
  return v
end
`;

/** KEYS r all st:active st:stale st:banned st:revoked; ARGV id expected json stateIndex(1..4). Returns {1, newVersion} or {0, current}. */
const CAS = `${VERSION_OF}
local v = version_of(redis.call('HGET', KEYS[1], ARGV[1]))
if not v then return redis.error_reply('KHCORRUPT node record without version') end
if v ~= tonumber(ARGV[2]) then return {0, v} end
local nv = v + 1
redis.call('HSET', KEYS[1], ARGV[1], nv .. '\\n' .. ARGV[3])
redis.call('ZADD', KEYS[2], 0, ARGV[1])
for i = 3, 6 do redis.call('ZREM', KEYS[i], ARGV[1]) end
redis.call('ZADD', KEYS[2 + tonumber(ARGV[4])], 0, ARGV[1])
return {1, nv}
`;

/** KEYS as CAS; ARGV id expected. Returns 1 when deleted. */
const CAD = `${VERSION_OF}
local cur = redis.call('HGET', KEYS[1], ARGV[1])
if not cur then return 0 end
local v = version_of(cur)
if not v then return redis.error_reply('KHCORRUPT node record without version') end
if v ~= tonumber(ARGV[2]) then return 0 end
redis.call('HDEL', KEYS[1], ARGV[1])
for i = 2, 6 do redis.call('ZREM', KEYS[i], ARGV[1]) end
return 1
`;

/** KEYS index r; ARGV from limit. Returns ids and their records in one atomic read. */
const PAGE = `
local ids = redis.call('ZRANGEBYLEX', KEYS[1], ARGV[1], '+', 'LIMIT', 0, tonumber(ARGV[2]))
if #ids == 0 then return {{}, {}} end
return {ids, redis.call('HMGET', KEYS[2], unpack(ids))}
`;

interface Commands {
  khNodeCas(r: string, all: string, s1: string, s2: string, s3: string, s4: string, id: string, expected: number, json: string, state: number): Promise<[number, number]>;
  khNodeCad(r: string, all: string, s1: string, s2: string, s3: string, s4: string, id: string, expected: number): Promise<number>;
  khNodePage(index: string, r: string, from: string, limit: number): Promise<[string[], (string | null)[]]>;
}

export class RedisNodeState implements NodeState {
  readonly #ctx: RedisContext;
  readonly #client: Commands;
  readonly #r: string;
  readonly #all: string;
  readonly #states: readonly string[];

  constructor(ctx: RedisContext) {
    this.#ctx = ctx;
    ctx.client.defineCommand('khNodeCas', { numberOfKeys: 6, lua: CAS });
    ctx.client.defineCommand('khNodeCad', { numberOfKeys: 6, lua: CAD });
    ctx.client.defineCommand('khNodePage', { numberOfKeys: 2, lua: PAGE });
    this.#client = ctx.client as unknown as Commands;
    const tag = ctx.tag('nodes');
    this.#r = `${tag}:r`;
    this.#all = `${tag}:all`;
    this.#states = LIFECYCLES.map((s) => `${tag}:st:${s}`);
  }

  async get(nodeId: string): Promise<NodeRecord | undefined> {
    checkNodeId(nodeId);
    const s = await this.#ctx.op(() => this.#ctx.client.hget(this.#r, nodeId));
    return s === null ? undefined : decodeEntry(nodeId, s);
  }

  async compareAndSwap(nodeId: string, expectedVersion: number, next: NodeRecordInput): Promise<NodeRecord | undefined> {
    checkExpectedVersion(expectedVersion);
    const { json, record } = checkNodeInput(nodeId, next);
    const state = LIFECYCLES.indexOf(next.state) + 1;
    const [s1, s2, s3, s4] = this.#states as [string, string, string, string];
    const [ok, version] = await this.#ctx.op(() => this.#client.khNodeCas(this.#r, this.#all, s1, s2, s3, s4, nodeId, expectedVersion, json, state));
    if (ok !== 1) return undefined;
    return storedNode(record, Number(version));
  }

  async compareAndDelete(nodeId: string, expectedVersion: number): Promise<boolean> {
    checkNodeId(nodeId);
    checkExpectedVersion(expectedVersion);
    const [s1, s2, s3, s4] = this.#states as [string, string, string, string];
    return (await this.#ctx.op(() => this.#client.khNodeCad(this.#r, this.#all, s1, s2, s3, s4, nodeId, expectedVersion))) === 1;
  }

  async list(options: { readonly state?: NodeLifecycle; readonly after?: string; readonly limit?: number } = {}): Promise<{ readonly nodes: readonly NodeRecord[]; readonly next?: string }> {
    const { state, after, limit } = checkListOptions(options);
    const index = state === undefined ? this.#all : this.#states[LIFECYCLES.indexOf(state)]!;
    const from = after === undefined ? '-' : `(${after}`;
    const [ids, records] = await this.#ctx.op(() => this.#client.khNodePage(index, this.#r, from, limit + 1));
    const nodes: NodeRecord[] = [];
    for (let i = 0; i < Math.min(ids.length, limit); i++) {
      const id = ids[i]!;
      const s = records[i];
      // SECURITY: an index entry without a record is damage; fail closed rather than hide a node.
      if (s === null || s === undefined) throw corrupt(`node index names ${id.slice(0, 80)} without a record`);
      const r = decodeEntry(id, s);
      if (state !== undefined && r.state !== state) throw corrupt(`node ${id.slice(0, 80)} is in the wrong state index`);
      nodes.push(r);
    }
    return ids.length > limit ? { nodes, next: nodes[nodes.length - 1]!.nodeId } : { nodes };
  }
}

function decodeEntry(nodeId: string, s: string): NodeRecord {
  // SECURITY: backend data is bounded before parsing (resource exhaustion by a tampered store).
  if (s.length > MAX_NODE_RECORD_CHARS + 32) throw corrupt(`node record ${nodeId.slice(0, 80)} too large`);
  const nl = s.indexOf('\n');
  const v = nl > 0 ? s.slice(0, nl) : '';
  if (!/^[1-9][0-9]{0,15}$/.test(v)) throw new StateError('STATE_CORRUPT', `node record ${nodeId.slice(0, 80)} has no version`);
  return decodeStoredNode(nodeId, s.slice(nl + 1), Number(v));
}
