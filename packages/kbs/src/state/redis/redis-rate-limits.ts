import { createHash } from 'node:crypto';
import { checkRateLimitRule } from '../embedded/memory-rate-limits.js';
import type { RateLimitDecision, RateLimitRule, RateLimitState } from '../ports.js';
import type { RedisContext } from './redis-connection.js';

/**
 * A token bucket per (rule, key) shared by every replica: key `{P:rl:<32 hex of SHA-256(rule, key)>}`,
 * a hash of tokens and last update time, refilled by the server clock (TIME) so replicas with
 * skewed clocks agree, and expiring once it would be full again.
 * KEYS bucket; ARGV tokens-per-ms burst. Returns {allowed, retryAfterMs}.
 */
const TAKE = `
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local b = redis.call('HMGET', KEYS[1], 'tk', 'ts')
local tokens = burst
if b[1] and b[2] then
  tokens = math.min(burst, tonumber(b[1]) + math.max(0, now - tonumber(b[2])) * rate)
end
local allowed = 0
local retry = 0
if tokens >= 1 then
  tokens = tokens - 1
  allowed = 1
else
  retry = math.ceil((1 - tokens) / rate)
end
redis.call('HSET', KEYS[1], 'tk', tostring(tokens), 'ts', now)
redis.call('PEXPIRE', KEYS[1], math.ceil((burst - tokens) / rate) + 1000)
return {allowed, retry}
`;

interface Commands {
  khRateTake(bucket: string, perMs: string, burst: number): Promise<[number, number]>;
}

export class RedisRateLimits implements RateLimitState {
  readonly #ctx: RedisContext;
  readonly #client: Commands;

  constructor(ctx: RedisContext) {
    this.#ctx = ctx;
    ctx.client.defineCommand('khRateTake', { numberOfKeys: 1, lua: TAKE });
    this.#client = ctx.client as unknown as Commands;
  }

  async take(key: string, rule: RateLimitRule): Promise<RateLimitDecision> {
    checkRateLimitRule(rule);
    if (typeof key !== 'string') throw new TypeError('rate limit key must be a string');
    // SECURITY: client-chosen text (addresses, forwarded headers) never becomes part of a key name
    // (hash-tag injection, unbounded keys): the bucket is named by a digest.
    const id = createHash('sha256').update(`${rule.ratePerSec}/${rule.burst}\n${key}`).digest('hex').slice(0, 32);
    const [allowed, retry] = await this.#ctx.op(() => this.#client.khRateTake(this.#ctx.tag(`rl:${id}`), String(rule.ratePerSec / 1000), rule.burst));
    return { allowed: allowed === 1, retryAfterMs: allowed === 1 ? 0 : Math.max(1, Number(retry)) };
  }
}
