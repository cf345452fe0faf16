import { StateError } from '../errors.js';
import {
  checkEventId,
  checkEventInput,
  checkName,
  checkPageLimit,
  compareEventIds,
  decodeStoredEvent,
  eventIdParts,
  isEventId,
} from '../event-record.js';
import { EventWaiters } from '../event-waiters.js';
import type { EventState, KbsEvent, KbsEventInput } from '../ports.js';
import { JournalStore, type JournalCodec } from './journal-store.js';
import type { MemoryLeases } from './memory-leases.js';

/** Journal keys: `<event id>` → the event (without id); `cursor:<consumer>` → `{"id"}`. */
type Stored = { readonly kind: 'event'; readonly event: KbsEvent } | { readonly kind: 'cursor'; readonly id: string };

const CURSOR = 'cursor:';

const CODEC: JournalCodec<Stored> = {
  encode(_key, value) {
    if (value.kind === 'cursor') return { id: value.id };
    const { id: _id, ...rest } = value.event;
    return rest;
  },
  decode(key, raw) {
    if (key.startsWith(CURSOR)) {
      const id = (raw as { id?: unknown } | null)?.id;
      if (!isEventId(id)) throw new StateError('STATE_CORRUPT', `event cursor ${key.slice(0, 80)} is corrupt`);
      return { kind: 'cursor', id };
    }
    return { kind: 'event', event: decodeStoredEvent(key, raw) };
  },
  isKey: (key) => (key.startsWith(CURSOR) ? /^[a-z0-9][a-z0-9._-]{0,63}$/.test(key.slice(CURSOR.length)) : isEventId(key)),
};

/**
 * The event log of one process: every event in a bounded in-memory list (the newest `retention`),
 * and — for events published `durable` and for delivery cursors — a JournalStore in the data dir
 * (fsync'd before `publish` / `advanceCursor` resolve), so a webhook event and the notifier's
 * position survive a restart. Ids are `<ms>-<seq>` from the wall clock, never behind the newest id
 * ever stored (also across restarts), so an id is never reused.
 */
export class EmbeddedEvents implements EventState {
  readonly #store: JournalStore<Stored>;
  readonly #retention: number;
  readonly #leases: MemoryLeases;
  readonly #now: () => number;
  /** Retained events in id order; `#start` is the index of the oldest retained one. */
  #events: KbsEvent[] = [];
  #start = 0;
  readonly #durable = new Set<string>();
  readonly #cursors = new Map<string, string>();
  readonly #waiters = new EventWaiters();
  #lastMs = 0;
  #lastSeq = -1;
  #tail: Promise<unknown> = Promise.resolve();

  private constructor(store: JournalStore<Stored>, retention: number, leases: MemoryLeases, now: () => number) {
    this.#store = store;
    this.#retention = retention;
    this.#leases = leases;
    this.#now = now;
  }

  /** Open over `dir` (undefined: memory only). */
  static async open(options: { dir: string | undefined; retention: number; leases: MemoryLeases; now?: () => number; compactMinBytes?: number }): Promise<EmbeddedEvents> {
    const store = await JournalStore.open<Stored>({
      dir: options.dir,
      name: 'events',
      codec: CODEC,
      ...(options.compactMinBytes !== undefined ? { compactMinBytes: options.compactMinBytes } : {}),
    });
    const e = new EmbeddedEvents(store, options.retention, options.leases, options.now ?? Date.now);
    const loaded: KbsEvent[] = [];
    for (const key of store.keys()) {
      const v = store.get(key)!;
      if (v.kind === 'cursor') e.#cursors.set(key.slice(CURSOR.length), v.id);
      else loaded.push(v.event);
    }
    loaded.sort((a, b) => compareEventIds(a.id, b.id));
    e.#events = loaded.slice(-options.retention);
    for (const ev of e.#events) e.#durable.add(ev.id);
    const newest = loaded[loaded.length - 1]?.id;
    if (newest !== undefined) [e.#lastMs, e.#lastSeq] = eventIdParts(newest);
    return e;
  }

  close(): Promise<void> {
    this.#waiters.wakeAll();
    return this.#store.close();
  }

  publish(events: readonly KbsEventInput[], options: { readonly durable?: boolean } = {}): Promise<readonly KbsEvent[]> {
    let jsons: string[];
    try {
      jsons = events.map(checkEventInput);
    } catch (err) {
      return Promise.reject(err);
    }
    if (jsons.length === 0) return Promise.resolve([]);
    // One publish at a time, so ids enter the list in order even while a durable write is in flight.
    const run = this.#tail.then(() => this.#publish(jsons, options.durable === true));
    this.#tail = run.catch(() => undefined);
    return run;
  }

  async #publish(jsons: readonly string[], durable: boolean): Promise<readonly KbsEvent[]> {
    const out = jsons.map((json) => decodeStoredEvent(this.#nextId(), JSON.parse(json) as unknown));
    const retainedAfter = this.#events.length - this.#start + out.length;
    const evictCount = Math.max(0, retainedAfter - this.#retention);
    const evicted = this.#events.slice(this.#start, this.#start + Math.min(evictCount, this.#events.length - this.#start));
    const deletions = evicted.filter((e) => this.#durable.has(e.id)).map((e) => [e.id, undefined] as const);
    const additions = durable ? out.map((e) => [e.id, { kind: 'event', event: e } as Stored] as const) : [];
    if (additions.length > 0 || deletions.length > 0) {
      await this.#store.mutate(() => ({ changes: [...additions, ...deletions], result: undefined }));
    }
    for (const e of evicted) this.#durable.delete(e.id);
    if (durable) for (const e of out) this.#durable.add(e.id);
    this.#events.push(...out);
    this.#start += evictCount;
    if (this.#start > 1024 && this.#start * 2 > this.#events.length) {
      this.#events = this.#events.slice(this.#start);
      this.#start = 0;
    }
    const newest = out[out.length - 1]!.id;
    this.#waiters.wakeNewerThan(newest);
    return out;
  }

  #nextId(): string {
    const now = Math.floor(this.#now());
    if (now > this.#lastMs) {
      this.#lastMs = now;
      this.#lastSeq = 0;
    } else {
      this.#lastSeq++;
    }
    return `${this.#lastMs}-${this.#lastSeq}`;
  }

  async read(options: { readonly after?: string; readonly limit: number }): Promise<readonly KbsEvent[]> {
    checkPageLimit(options.limit);
    let i = this.#start;
    if (options.after !== undefined) {
      checkEventId(options.after);
      i = this.#firstAfter(options.after);
    }
    return this.#events.slice(i, i + options.limit);
  }

  async latest(limit: number): Promise<readonly KbsEvent[]> {
    checkPageLimit(limit);
    return this.#events.slice(Math.max(this.#start, this.#events.length - limit));
  }

  waitForNew(after: string | undefined, timeoutMs: number, signal?: AbortSignal): Promise<void> {
    if (after !== undefined) checkEventId(after);
    const newest = this.#events.length > this.#start ? this.#events[this.#events.length - 1]!.id : undefined;
    if (signal?.aborted === true || (newest !== undefined && (after === undefined || compareEventIds(newest, after) > 0))) return Promise.resolve();
    return this.#waiters.wait(after, timeoutMs, signal);
  }

  async cursor(consumer: string): Promise<string | undefined> {
    checkName(consumer, 'consumer');
    return this.#cursors.get(consumer);
  }

  async advanceCursor(consumer: string, id: string, fence: { readonly lease: string; readonly holder: string }): Promise<boolean> {
    checkName(consumer, 'consumer');
    checkEventId(id);
    checkName(fence.lease, 'lease name');
    if (!this.#leases.holds(fence.lease, fence.holder)) return false;
    const cur = this.#cursors.get(consumer);
    if (cur !== undefined && compareEventIds(id, cur) <= 0) return true;
    await this.#store.mutate(() => ({ changes: [[`${CURSOR}${consumer}`, { kind: 'cursor', id }]], result: undefined }));
    const now = this.#cursors.get(consumer);
    if (now === undefined || compareEventIds(id, now) > 0) this.#cursors.set(consumer, id);
    return true;
  }

  /** Index of the first retained event with an id greater than `after`. */
  #firstAfter(after: string): number {
    let lo = this.#start;
    let hi = this.#events.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (compareEventIds(this.#events[mid]!.id, after) <= 0) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }
}
