import { BINDING_HASH_ALGORITHMS, type BindingHashAlgorithm } from '@keyhold/protocol';
import { KbsError } from '../../errors.js';
import type { AttestedSession, NewSession, SessionLimits, SessionRecord, SessionState } from '../ports.js';
import { checkSessionId, encodeAttestation, encodeNewSession, MAX_SESSION_PART_CHARS, sessionLimitError } from '../session-record.js';
import { corrupt, type RedisContext } from './redis-connection.js';

/**
 * Sessions are sharded by the first hex digit of their (random) id: shard s keeps
 *   `{P:sess:s}:d`  HASH  <id> → record JSON, <id>:u → "1" once the nonce is consumed,
 *                         <id>:a → attestation JSON, <id>:b / <id>:ab → bytes of the session /
 *                         of its attestation, `#b` → bytes of the shard
 *   `{P:sess:s}:x`  ZSET  <id> → expiresAtMs
 * Each operation is one script on one shard. Expired sessions are refused at once and removed by
 * the next create on their shard (up to 64 at a time) or by `stats`; both keys carry a TTL of the
 * newest session's expiry plus a minute, so an idle shard disappears on its own. Caps are kept per
 * shard: floor(max/16) sessions and bytes each (see README: approximate by design).
 */
const PRUNE = `
local function prune(d, x, now, limit)
  local gone = redis.call('ZRANGEBYSCORE', x, '-inf', now, 'LIMIT', 0, limit)
  for _, id in ipairs(gone) do
    local b = tonumber(redis.call('HGET', d, id .. ':b') or '0') or 0
    redis.call('HDEL', d, id, id .. ':u', id .. ':a', id .. ':b', id .. ':ab')
    redis.call('ZREM', x, id)
    redis.call('HINCRBY', d, '#b', -b)
  end
end
local function remove(d, x, id)
  local b = tonumber(redis.call('HGET', d, id .. ':b') or '0') or 0
  if redis.call('HDEL', d, id, id .. ':u', id .. ':a', id .. ':b', id .. ':ab') > 0 then redis.call('HINCRBY', d, '#b', -b) end
  redis.call('ZREM', x, id)
end
-- {status, record, consumed, attestation}: status 1 live, 0 unknown, -1 expired (removed now)
local function live(d, x, id, now)
  local v = redis.call('HMGET', d, id, id .. ':u', id .. ':a')
  if not v[1] then return {0} end
  local e = tonumber(redis.call('ZSCORE', x, id))
  if not e then return redis.error_reply('KHCORRUPT session without expiry') end
  if e <= now then
    remove(d, x, id)
    return {-1}
  end
  return {1, v[1], v[2] or '', v[3] or ''}
end
`;

/** KEYS d x; ARGV id record expiresAt bytes now maxCount maxBytes. Returns 1, or -1/-2 (count/bytes cap), -3 (id in use). */
const CREATE = `${PRUNE}
local now = tonumber(ARGV[5])
prune(KEYS[1], KEYS[2], now, 64)
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 1 then return -3 end
if redis.call('ZCARD', KEYS[2]) >= tonumber(ARGV[6]) then return -1 end
local bytes = tonumber(ARGV[4])
if (tonumber(redis.call('HGET', KEYS[1], '#b') or '0') or 0) + bytes > tonumber(ARGV[7]) then return -2 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2], ARGV[1] .. ':b', bytes)
redis.call('HINCRBY', KEYS[1], '#b', bytes)
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[1])
local keep = tonumber(ARGV[3]) - now + 60000
for i = 1, 2 do
  if redis.call('PTTL', KEYS[i]) < keep then redis.call('PEXPIRE', KEYS[i], keep) end
end
return 1
`;

/** KEYS d x; ARGV id now. */
const GET = `${PRUNE}
return live(KEYS[1], KEYS[2], ARGV[1], tonumber(ARGV[2]))
`;

/** KEYS d x; ARGV id now. Status -2: already consumed. */
const CONSUME = `${PRUNE}
local s = live(KEYS[1], KEYS[2], ARGV[1], tonumber(ARGV[2]))
if s[1] ~= 1 then return s end
if redis.call('HSETNX', KEYS[1], ARGV[1] .. ':u', '1') == 0 then return {-2} end
return {1, s[2], '', s[4]}
`;

/** KEYS d x; ARGV id now json bytes. Status -3: nonce not consumed. */
const ATTEST = `${PRUNE}
local s = live(KEYS[1], KEYS[2], ARGV[1], tonumber(ARGV[2]))
if s[1] ~= 1 then return s end
if s[3] ~= '1' then return {-3} end
local old = tonumber(redis.call('HGET', KEYS[1], ARGV[1] .. ':ab') or '0') or 0
local delta = tonumber(ARGV[4]) - old
redis.call('HSET', KEYS[1], ARGV[1] .. ':a', ARGV[3], ARGV[1] .. ':ab', ARGV[4])
redis.call('HINCRBY', KEYS[1], ARGV[1] .. ':b', delta)
redis.call('HINCRBY', KEYS[1], '#b', delta)
return {1}
`;

/** KEYS d x; ARGV id. */
const DELETE = `${PRUNE}
remove(KEYS[1], KEYS[2], ARGV[1])
return 1
`;

/** KEYS d x; ARGV now. Returns {count, bytes} after pruning. */
const STATS = `${PRUNE}
prune(KEYS[1], KEYS[2], tonumber(ARGV[1]), 1000)
return {redis.call('ZCARD', KEYS[2]), tonumber(redis.call('HGET', KEYS[1], '#b') or '0') or 0}
`;

type Reply = [number, string?, string?, string?];
interface Commands {
  khSessCreate(d: string, x: string, id: string, record: string, exp: number, bytes: number, now: number, maxCount: number, maxBytes: number): Promise<number>;
  khSessGet(d: string, x: string, id: string, now: number): Promise<Reply>;
  khSessConsume(d: string, x: string, id: string, now: number): Promise<Reply>;
  khSessAttest(d: string, x: string, id: string, now: number, json: string, bytes: number): Promise<Reply>;
  khSessDelete(d: string, x: string, id: string): Promise<number>;
  khSessStats(d: string, x: string, now: number): Promise<[number, number]>;
}

const SHARDS = '0123456789abcdef';

export class RedisSessionState implements SessionState {
  readonly #ctx: RedisContext;
  readonly #client: Commands;
  readonly #maxCount: number;
  readonly #maxBytes: number;
  readonly #now: () => number;

  constructor(ctx: RedisContext, limits: SessionLimits, now: () => number = Date.now) {
    this.#ctx = ctx;
    for (const [name, lua] of Object.entries({ khSessCreate: CREATE, khSessGet: GET, khSessConsume: CONSUME, khSessAttest: ATTEST, khSessDelete: DELETE, khSessStats: STATS })) {
      ctx.client.defineCommand(name, { numberOfKeys: 2, lua });
    }
    this.#client = ctx.client as unknown as Commands;
    this.#maxCount = Math.max(1, Math.floor(limits.maxSessions / SHARDS.length));
    this.#maxBytes = Math.max(1, Math.floor(limits.maxSessionBytes / SHARDS.length));
    this.#now = now;
  }

  #keys(id: string): [string, string] {
    const tag = this.#ctx.tag(`sess:${id[0]}`);
    return [`${tag}:d`, `${tag}:x`];
  }

  async create(s: NewSession): Promise<void> {
    const enc = encodeNewSession(s);
    const record = JSON.stringify({ t: s.tee, n: s.nonce, h: s.hashAlgorithm, e: s.expiresAtMs, ...(s.challenge !== undefined ? { c: s.challenge } : {}) });
    const [d, x] = this.#keys(s.id);
    const r = await this.#ctx.op(() => this.#client.khSessCreate(d, x, s.id, record, s.expiresAtMs, enc.bytes, this.#now(), this.#maxCount, this.#maxBytes));
    // SECURITY: bounds what a flood of /auth calls can pin, by count and by bytes, on every replica
    // at once (issue 12 item 1).
    if (r === -1) throw sessionLimitError('count');
    if (r === -2) throw sessionLimitError('bytes');
    if (r === -3) throw new TypeError('session id is already in use');
  }

  async get(id: string): Promise<SessionRecord> {
    checkSessionId(id);
    const [d, x] = this.#keys(id);
    return decode(id, checkStatus(await this.#ctx.op(() => this.#client.khSessGet(d, x, id, this.#now()))));
  }

  async consumeNonce(id: string): Promise<SessionRecord> {
    checkSessionId(id);
    const [d, x] = this.#keys(id);
    const r = await this.#ctx.op(() => this.#client.khSessConsume(d, x, id, this.#now()));
    // SECURITY: one nonce, one attestation, across every replica: HSETNX in the script lets exactly
    // one caller win (replay).
    if (r[0] === -2) throw new KbsError('NONCE_CONSUMED', 'this session already attested; start a new one with /auth');
    return decode(id, checkStatus(r));
  }

  async recordAttestation(id: string, attested: AttestedSession): Promise<void> {
    const json = encodeAttestation(attested);
    checkSessionId(id);
    const [d, x] = this.#keys(id);
    const r = await this.#ctx.op(() => this.#client.khSessAttest(d, x, id, this.#now(), json, json.length));
    if (r[0] === -3) throw new TypeError('recordAttestation: the session nonce was not consumed');
    checkStatus(r);
  }

  async delete(id: string): Promise<void> {
    checkSessionId(id);
    const [d, x] = this.#keys(id);
    await this.#ctx.op(() => this.#client.khSessDelete(d, x, id));
  }

  async stats(): Promise<{ readonly count: number; readonly bytes: number }> {
    const now = this.#now();
    const per = await this.#ctx.op(() =>
      Promise.all(
        [...SHARDS].map((s) => {
          const [d, x] = this.#keys(s);
          return this.#client.khSessStats(d, x, now);
        }),
      ),
    );
    return per.reduce((a, [count, bytes]) => ({ count: a.count + Number(count), bytes: a.bytes + Number(bytes) }), { count: 0, bytes: 0 });
  }
}

function checkStatus(r: Reply): Reply {
  if (r[0] === 0) throw new KbsError('SESSION_MISSING', 'unknown session');
  // SECURITY: an expired session can no longer attest or fetch (stale nonce/token reuse).
  if (r[0] === -1) throw new KbsError('SESSION_EXPIRED', 'session expired');
  if (r[0] !== 1) throw corrupt('unexpected session script reply');
  return r;
}

function decode(id: string, r: Reply): SessionRecord {
  const [, recordJson, consumed, attestedJson] = r;
  // SECURITY: backend data is bounded and shape-checked before use (tampered store).
  if (typeof recordJson !== 'string' || recordJson.length > 2 * MAX_SESSION_PART_CHARS || (attestedJson?.length ?? 0) > 2 * MAX_SESSION_PART_CHARS) throw corrupt('session record');
  let v: { t?: unknown; n?: unknown; h?: unknown; e?: unknown; c?: unknown };
  let attested: AttestedSession | undefined;
  try {
    v = JSON.parse(recordJson) as typeof v;
    attested = attestedJson === undefined || attestedJson === '' ? undefined : (JSON.parse(attestedJson) as AttestedSession);
  } catch (cause) {
    throw corrupt('session record', cause);
  }
  if (
    typeof v !== 'object' || v === null ||
    typeof v.t !== 'string' || typeof v.n !== 'string' ||
    !(BINDING_HASH_ALGORITHMS as readonly unknown[]).includes(v.h) ||
    !Number.isSafeInteger(v.e) ||
    (v.c !== undefined && (typeof v.c !== 'object' || v.c === null || Array.isArray(v.c))) ||
    (attested !== undefined && (typeof attested !== 'object' || attested === null || typeof attested.claims !== 'object' || typeof attested.teePubkey !== 'object'))
  ) {
    throw corrupt('session record');
  }
  return {
    id,
    tee: v.t,
    nonce: v.n,
    hashAlgorithm: v.h as BindingHashAlgorithm,
    expiresAtMs: v.e as number,
    ...(v.c !== undefined ? { challenge: v.c as Record<string, unknown> } : {}),
    nonceConsumed: consumed === '1',
    ...(attested !== undefined ? { attested } : {}),
  };
}
