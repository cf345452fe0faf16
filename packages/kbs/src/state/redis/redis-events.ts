import { checkEventId, checkEventInput, checkName, checkPageLimit, decodeStoredEvent } from '../event-record.js';
import { checkLease } from '../embedded/memory-leases.js';
import { EventWaiters } from '../event-waiters.js';
import type { EventState, KbsEvent, KbsEventInput, LeaseState } from '../ports.js';
import { corrupt, type RedisContext } from './redis-connection.js';

/**
 * Events, delivery cursors and leases, all under one hash tag `{P:events}` (one slot, so a fenced
 * cursor move reads the lease and writes the cursor atomically):
 *   `{P:events}:s`            STREAM  one entry per event, field `e` = the event JSON (without id);
 *                                     trimmed with XADD MAXLEN ~ <retention> (at least that many kept)
 *   `{P:events}:cur`          HASH    consumer → the last event id it finished
 *   `{P:events}:lease:<name>` STRING  the holder, with a TTL (PX)
 * Stream ids are Redis's own `<ms>-<seq>` (server clock, strictly increasing).
 */

/** KEYS stream; ARGV maxlen json... Returns the new ids. */
const PUBLISH = `
local ids = {}
for i = 2, #ARGV do ids[#ids + 1] = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*', 'e', ARGV[i]) end
return ids
`;

/** KEYS cur lease; ARGV consumer id holder. Returns 1 when the holder holds the lease (cursor moved forward or already past), 0 otherwise. */
const ADVANCE = `
if redis.call('GET', KEYS[2]) ~= ARGV[3] then return 0 end
local cur = redis.call('HGET', KEYS[1], ARGV[1])
if cur then
  local cm, cs = string.match(cur, '^(%d+)-(%d+)$')
  local nm, ns = string.match(ARGV[2], '^(%d+)-(%d+)$')
  if not cm then return redis.error_reply('KHCORRUPT event cursor') end
  cm = tonumber(cm); cs = tonumber(cs); nm = tonumber(nm); ns = tonumber(ns)
  if nm < cm or (nm == cm and ns <= cs) then return 1 end
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
return 1
`;

/** KEYS lease; ARGV holder ttlMs. */
const ACQUIRE = `
local cur = redis.call('GET', KEYS[1])
if cur and cur ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
`;

/** KEYS lease; ARGV holder. */
const RELEASE = `
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
return 1
`;

interface Commands {
  khEventsPublish(stream: string, maxlen: number, ...jsons: string[]): Promise<string[]>;
  khEventsAdvance(cur: string, lease: string, consumer: string, id: string, holder: string): Promise<number>;
  khLeaseAcquire(lease: string, holder: string, ttlMs: number): Promise<number>;
  khLeaseRelease(lease: string, holder: string): Promise<number>;
}

type StreamEntry = [string, string[]];

/** How often a process with waiting readers asks Redis for the newest id. */
export const EVENT_POLL_MS = 200;

export class RedisEvents implements EventState, LeaseState {
  readonly #ctx: RedisContext;
  readonly #client: Commands;
  readonly #stream: string;
  readonly #cur: string;
  readonly #leasePrefix: string;
  readonly #retention: number;
  readonly #waiters = new EventWaiters();
  #polling = false;
  #closed = false;

  constructor(ctx: RedisContext, retention: number) {
    this.#ctx = ctx;
    ctx.client.defineCommand('khEventsPublish', { numberOfKeys: 1, lua: PUBLISH });
    ctx.client.defineCommand('khEventsAdvance', { numberOfKeys: 2, lua: ADVANCE });
    ctx.client.defineCommand('khLeaseAcquire', { numberOfKeys: 1, lua: ACQUIRE });
    ctx.client.defineCommand('khLeaseRelease', { numberOfKeys: 1, lua: RELEASE });
    this.#client = ctx.client as unknown as Commands;
    const tag = ctx.tag('events');
    this.#stream = `${tag}:s`;
    this.#cur = `${tag}:cur`;
    this.#leasePrefix = `${tag}:lease:`;
    this.#retention = retention;
  }

  close(): void {
    this.#closed = true;
    this.#waiters.wakeAll();
  }

  async publish(events: readonly KbsEventInput[]): Promise<readonly KbsEvent[]> {
    const jsons = events.map(checkEventInput);
    if (jsons.length === 0) return [];
    const ids = await this.#ctx.op(() => this.#client.khEventsPublish(this.#stream, this.#retention, ...jsons));
    return jsons.map((json, i) => decodeStoredEvent(ids[i]!, json));
  }

  async read(options: { readonly after?: string; readonly limit: number }): Promise<readonly KbsEvent[]> {
    checkPageLimit(options.limit);
    if (options.after !== undefined) checkEventId(options.after);
    const from = options.after === undefined ? '-' : `(${options.after}`;
    const entries = (await this.#ctx.op(() => this.#ctx.client.xrange(this.#stream, from, '+', 'COUNT', options.limit))) as StreamEntry[];
    return entries.map(decodeEntry);
  }

  async latest(limit: number): Promise<readonly KbsEvent[]> {
    checkPageLimit(limit);
    const entries = (await this.#ctx.op(() => this.#ctx.client.xrevrange(this.#stream, '+', '-', 'COUNT', limit))) as StreamEntry[];
    return entries.map(decodeEntry).reverse();
  }

  waitForNew(after: string | undefined, timeoutMs: number, signal?: AbortSignal): Promise<void> {
    if (after !== undefined) checkEventId(after);
    if (signal?.aborted === true || this.#closed) return Promise.resolve();
    const waiting = this.#waiters.wait(after, timeoutMs, signal);
    if (!this.#polling) void this.#poll();
    return waiting;
  }

  /** One short poll loop per process while anyone waits: every waiter shares one XREVRANGE per tick. */
  async #poll(): Promise<void> {
    this.#polling = true;
    try {
      while (this.#waiters.size > 0 && !this.#closed) {
        let newest: string | undefined;
        try {
          const e = (await this.#ctx.op(() => this.#ctx.client.xrevrange(this.#stream, '+', '-', 'COUNT', 1))) as StreamEntry[];
          newest = e[0]?.[0];
        } catch {
          // An outage: waiters time out and their readers see the error on their next read.
        }
        if (newest !== undefined) {
          this.#waiters.wakeNewerThan(newest);
        }
        if (this.#waiters.size === 0) break;
        await new Promise((r) => setTimeout(r, EVENT_POLL_MS).unref());
      }
    } finally {
      this.#polling = false;
    }
  }

  async cursor(consumer: string): Promise<string | undefined> {
    checkName(consumer, 'consumer');
    const id = await this.#ctx.op(() => this.#ctx.client.hget(this.#cur, consumer));
    if (id === null) return undefined;
    // SECURITY: a cursor that is not an id is damage; never guess a position (fail closed).
    if (!/^[0-9]{1,16}-[0-9]{1,16}$/.test(id)) throw corrupt(`event cursor ${consumer}`);
    return id;
  }

  async advanceCursor(consumer: string, id: string, fence: { readonly lease: string; readonly holder: string }): Promise<boolean> {
    checkName(consumer, 'consumer');
    checkEventId(id);
    checkName(fence.lease, 'lease name');
    return (await this.#ctx.op(() => this.#client.khEventsAdvance(this.#cur, this.#leasePrefix + fence.lease, consumer, id, fence.holder))) === 1;
  }

  async acquire(name: string, holder: string, ttlMs: number): Promise<boolean> {
    checkLease(name, holder, ttlMs);
    return (await this.#ctx.op(() => this.#client.khLeaseAcquire(this.#leasePrefix + name, holder, ttlMs))) === 1;
  }

  async release(name: string, holder: string): Promise<void> {
    checkName(name, 'lease name');
    await this.#ctx.op(() => this.#client.khLeaseRelease(this.#leasePrefix + name, holder));
  }
}

function decodeEntry(entry: StreamEntry): KbsEvent {
  const [id, fields] = entry;
  // SECURITY: a stream entry without exactly our one field is damage or a foreign writer (fail closed).
  if (!Array.isArray(fields) || fields.length !== 2 || fields[0] !== 'e' || typeof fields[1] !== 'string') throw corrupt(`event ${String(id).slice(0, 40)} has unexpected fields`);
  return decodeStoredEvent(id, fields[1]);
}
