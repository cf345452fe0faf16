import type { Logger } from 'pino';
import type { EventState, KbsEvent, KbsEventInput } from '../state/ports.js';

/** What a route emits: the event without its time and replica (the publisher adds them). */
export type EmittedEvent = Omit<KbsEventInput, 'at' | 'replica'> & { readonly at?: string };

export interface EventPublisherMetrics {
  eventsPublished(count: number): void;
  /** `buffer_full`: the bounded buffer was full; `backend`: the state refused (after retries); `invalid`: a malformed event (a bug). */
  eventsDropped(reason: 'buffer_full' | 'backend' | 'invalid', count: number): void;
}

export interface EventPublisherOptions {
  readonly events: EventState;
  /** This replica's name, stamped on every event. */
  readonly replica: string;
  /** True for events that must survive a restart of an embedded KBS (those a webhook wants). */
  readonly durable?: (event: KbsEventInput) => boolean;
  /** Events waiting to be published before new ones are dropped (default 10 000). */
  readonly maxBuffered?: number;
  readonly metrics?: EventPublisherMetrics;
  readonly logger?: Logger;
  readonly now?: () => number;
}

const BATCH = 100;
const RETRIES = 3;
const MAX_REASON = 1000;

/**
 * Fire-and-forget publishing for the request path: `emit` only appends to a bounded in-memory
 * buffer and never throws, blocks or awaits; one background loop per process publishes the buffer
 * to the state's event log in batches, in emit order. When the buffer is full or the backend keeps
 * failing (three tries), events are dropped and counted (`keyhold_kbs_events_dropped_total`): an
 * outage of the event log never fails or slows a request. Delivery guarantees (webhooks: at least
 * once) start when an event is stored.
 */
export class EventPublisher {
  readonly #o: EventPublisherOptions;
  readonly #max: number;
  #buffer: KbsEventInput[] = [];
  #draining: Promise<void> | undefined;
  #closed = false;

  constructor(options: EventPublisherOptions) {
    const max = options.maxBuffered ?? 10_000;
    if (!Number.isSafeInteger(max) || max < 1) throw new TypeError('maxBuffered must be a positive integer');
    this.#o = options;
    this.#max = max;
  }

  /** Queue one event. Never throws. */
  emit(event: EmittedEvent): void {
    if (this.#closed) return;
    if (this.#buffer.length >= this.#max) {
      this.#o.metrics?.eventsDropped('buffer_full', 1);
      return;
    }
    const at = event.at ?? new Date(this.#o.now?.() ?? Date.now()).toISOString();
    const full: KbsEventInput = { ...event, at, replica: this.#o.replica, ...(event.reason !== undefined ? { reason: event.reason.slice(0, MAX_REASON) } : {}) };
    this.#buffer.push(full);
    this.#draining ??= this.#drain().finally(() => {
      this.#draining = undefined;
    });
  }

  /** Resolves once everything emitted so far was published or dropped (tests, shutdown). */
  async flush(): Promise<void> {
    while (this.#draining !== undefined) await this.#draining;
  }

  /** Stop accepting events and publish what is buffered, waiting at most `timeoutMs`. */
  async close(timeoutMs = 2000): Promise<void> {
    this.#closed = true;
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([this.flush(), new Promise<void>((r) => (timer = setTimeout(r, timeoutMs)))]);
    clearTimeout(timer);
  }

  async #drain(): Promise<void> {
    // Let events emitted in the same tick join the first batch.
    await Promise.resolve();
    while (this.#buffer.length > 0) {
      const durable = this.#o.durable?.(this.#buffer[0]!) ?? false;
      let n = 1;
      while (n < Math.min(BATCH, this.#buffer.length) && (this.#o.durable?.(this.#buffer[n]!) ?? false) === durable) n++;
      const batch = this.#buffer.slice(0, n);
      this.#buffer = this.#buffer.slice(n);
      await this.#publish(batch, durable);
    }
  }

  async #publish(batch: readonly KbsEventInput[], durable: boolean): Promise<readonly KbsEvent[] | undefined> {
    for (let attempt = 1; ; attempt++) {
      try {
        const out = await this.#o.events.publish(batch, { durable });
        this.#o.metrics?.eventsPublished(out.length);
        return out;
      } catch (err) {
        if (err instanceof TypeError) {
          // A malformed event is a bug: publish the others, drop it.
          if (batch.length > 1) {
            for (const e of batch) await this.#publish([e], durable);
            return undefined;
          }
          this.#o.metrics?.eventsDropped('invalid', 1);
          this.#o.logger?.error({ type: batch[0]?.type, err: err.message }, 'event dropped: malformed');
          return undefined;
        }
        if (attempt >= RETRIES) {
          this.#o.metrics?.eventsDropped('backend', batch.length);
          this.#o.logger?.warn({ count: batch.length, code: (err as { code?: string }).code }, 'events dropped: the event log is unavailable');
          return undefined;
        }
        await new Promise((r) => setTimeout(r, 100 * 2 ** attempt).unref());
      }
    }
  }
}
