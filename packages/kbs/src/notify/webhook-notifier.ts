/**
 * Webhook delivery (issue 13; Keylime's revocation-notifier role). One notifier across replicas:
 * the replica holding the `notifier` lease (state port, renewed every third of its TTL) runs one
 * loop per webhook; the others wait. Each loop reads the event log after the webhook's delivery
 * cursor, POSTs each event the webhook wants (signed, see webhook-signature.ts), retries a failed
 * delivery with exponential backoff (1 s doubling to 60 s, with jitter) until it gets a 2xx, and
 * only then moves the cursor — fenced by the lease, so a replica that lost it cannot move it.
 *
 * Guarantees: at least once for every event stored while the webhook is configured (a replica
 * dying mid-delivery leaves the cursor before the event; the next lease holder delivers it again);
 * in event order per webhook (a failing webhook holds back its own later events, never another
 * webhook's); never on the request path. Limits: events older than the retention (10 000 by
 * default) are gone if a webhook stays down that long; a new webhook starts with the events after
 * the notifier's start, not the retained history. Redirects are not followed (a 3xx is a failure).
 */
import type { Logger } from 'pino';
import type { KbsEvent, KbsEventType, KbsState } from '../state/ports.js';
import { EVENT_ID_HEADER, EVENT_TYPE_HEADER, SIGNATURE_HEADER, signWebhook } from './webhook-signature.js';

export const NOTIFIER_LEASE = 'notifier';

export interface WebhookTarget {
  /** Delivery cursor name. */
  readonly name: string;
  readonly url: string;
  readonly secret: Uint8Array;
  readonly events: ReadonlySet<KbsEventType>;
  readonly timeoutMs: number;
}

export interface WebhookNotifierOptions {
  readonly state: Pick<KbsState, 'events' | 'leases'>;
  readonly targets: readonly WebhookTarget[];
  /** This replica's lease holder name. */
  readonly holder: string;
  readonly logger?: Logger;
  readonly metrics?: { webhookDelivery(result: 'ok' | 'failed'): void };
  /** Lease time to live (default 15 s). */
  readonly leaseTtlMs?: number;
  readonly retryBaseMs?: number;
  readonly retryMaxMs?: number;
  /** How long one wait for new events lasts before the loop looks again (default 5 s). */
  readonly idleWaitMs?: number;
  readonly fetch?: typeof fetch;
  readonly now?: () => number;
}

const PAGE = 100;

export class WebhookNotifier {
  readonly #o: WebhookNotifierOptions;
  readonly #ttl: number;
  readonly #startedAtMs: number;
  #timer: NodeJS.Timeout | undefined;
  #loops: { readonly abort: AbortController; readonly done: Promise<void> } | undefined;
  #lastRenewalMs = 0;
  #ticking: Promise<void> | undefined;
  #stopped = false;

  constructor(options: WebhookNotifierOptions) {
    this.#o = options;
    this.#ttl = options.leaseTtlMs ?? 15_000;
    this.#startedAtMs = this.#now();
  }

  #now(): number {
    return this.#o.now?.() ?? Date.now();
  }

  /** Whether this replica currently runs the deliveries. */
  get active(): boolean {
    return this.#loops !== undefined;
  }

  start(): void {
    if (this.#timer !== undefined || this.#o.targets.length === 0) return;
    this.#timer = setInterval(() => void this.tick(), Math.max(100, Math.floor(this.#ttl / 3)));
    this.#timer.unref();
    void this.tick();
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    clearInterval(this.#timer);
    this.#timer = undefined;
    await this.#ticking;
    await this.#stopLoops();
    await this.#o.state.leases.release(NOTIFIER_LEASE, this.#o.holder).catch(() => undefined);
  }

  /** Take or renew the lease; start or stop the delivery loops accordingly. */
  tick(): Promise<void> {
    this.#ticking ??= this.#tick().finally(() => {
      this.#ticking = undefined;
    });
    return this.#ticking;
  }

  async #tick(): Promise<void> {
    if (this.#stopped) return;
    let held = false;
    try {
      held = await this.#o.state.leases.acquire(NOTIFIER_LEASE, this.#o.holder, this.#ttl);
      if (held) this.#lastRenewalMs = this.#now();
    } catch {
      // Unknown: keep delivering only while the last renewal is younger than the TTL.
      held = this.#loops !== undefined && this.#now() - this.#lastRenewalMs < this.#ttl;
    }
    if (held && this.#loops === undefined && !this.#stopped) {
      const abort = new AbortController();
      this.#o.logger?.info({ webhooks: this.#o.targets.length }, 'webhook notifier active on this replica');
      const done = Promise.all(this.#o.targets.map((t) => this.#run(t, abort.signal))).then(() => undefined);
      this.#loops = { abort, done };
    } else if (!held && this.#loops !== undefined) {
      await this.#stopLoops();
    }
  }

  async #stopLoops(): Promise<void> {
    const loops = this.#loops;
    this.#loops = undefined;
    if (loops === undefined) return;
    loops.abort.abort();
    await loops.done;
  }

  /** Lease lost (a fenced cursor move failed): stop every loop; the next tick may take it again. */
  #lost(): void {
    this.#o.logger?.warn('webhook notifier lease lost; another replica delivers');
    this.#loops?.abort.abort();
    this.#loops = undefined;
  }

  async #run(target: WebhookTarget, signal: AbortSignal): Promise<void> {
    const { events } = this.#o.state;
    const fence = { lease: NOTIFIER_LEASE, holder: this.#o.holder };
    let cursor: string | undefined;
    let failures = 0;
    while (!signal.aborted) {
      try {
        if (cursor === undefined) {
          const stored = await events.cursor(target.name);
          if (stored === undefined) {
            // A new webhook starts with the events after this notifier started; the position is
            // stored at once, so events published while every notifier is down are not skipped.
            cursor = `${this.#startedAtMs}-0`;
            if (!(await events.advanceCursor(target.name, cursor, fence))) return this.#lost();
          } else {
            cursor = stored;
          }
        }
        const page = await events.read({ after: cursor, limit: PAGE });
        if (page.length === 0) {
          await events.waitForNew(cursor, this.#o.idleWaitMs ?? 5000, signal);
          continue;
        }
        for (const e of page) {
          if (target.events.has(e.type) && !(await this.#deliver(target, e, signal))) return;
          if (!(await events.advanceCursor(target.name, e.id, fence))) return this.#lost();
          cursor = e.id;
        }
        failures = 0;
      } catch (err) {
        // The state is unavailable: wait and read again from the stored cursor.
        failures++;
        this.#o.logger?.warn({ webhook: target.name, code: (err as { code?: string }).code }, 'webhook notifier cannot read the event log');
        cursor = undefined;
        await sleep(Math.min(30_000, 500 * 2 ** Math.min(failures, 6)), signal);
      }
    }
  }

  /** POST one event until a 2xx; false when stopped first. */
  async #deliver(target: WebhookTarget, event: KbsEvent, signal: AbortSignal): Promise<boolean> {
    const body = JSON.stringify(event);
    const doFetch = this.#o.fetch ?? fetch;
    for (let attempt = 1; !signal.aborted; attempt++) {
      let status = 0;
      try {
        const res = await doFetch(target.url, {
          method: 'POST',
          redirect: 'manual',
          headers: {
            'content-type': 'application/json',
            'user-agent': 'keyhold-kbs webhook',
            [SIGNATURE_HEADER]: signWebhook(target.secret, body, Math.floor(this.#now() / 1000)),
            [EVENT_ID_HEADER]: event.id,
            [EVENT_TYPE_HEADER]: event.type,
          },
          body,
          signal: AbortSignal.any([signal, AbortSignal.timeout(target.timeoutMs)]),
        });
        status = res.status;
        await res.body?.cancel().catch(() => undefined);
      } catch {
        status = 0;
      }
      if (status >= 200 && status < 300) {
        this.#o.metrics?.webhookDelivery('ok');
        return true;
      }
      this.#o.metrics?.webhookDelivery('failed');
      const base = this.#o.retryBaseMs ?? 1000;
      const delay = Math.min(this.#o.retryMaxMs ?? 60_000, base * 2 ** Math.min(attempt - 1, 16));
      this.#o.logger?.warn({ webhook: target.name, event: event.id, status, attempt, retryInMs: delay }, 'webhook delivery failed; retrying');
      await sleep(delay * (1 + Math.random() * 0.2), signal);
    }
    return false;
  }
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const done = (): void => {
      clearTimeout(t);
      signal.removeEventListener('abort', done);
      resolve();
    };
    const t = setTimeout(done, ms);
    signal.addEventListener('abort', done, { once: true });
  });
}
