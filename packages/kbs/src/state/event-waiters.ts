import { compareEventIds } from './event-record.js';

interface Waiter {
  readonly after: string | undefined;
  readonly wake: () => void;
}

/**
 * The readers waiting for an event newer than the one they saw (`EventState.waitForNew`), shared by
 * the embedded and the Redis event stores: each wait ends on a wake, its timeout or its abort
 * signal, whichever comes first, and removes itself.
 */
export class EventWaiters {
  readonly #waiters = new Set<Waiter>();

  get size(): number {
    return this.#waiters.size;
  }

  /** Resolves on `wakeNewerThan` past `after` (any event when undefined), `wakeAll`, timeout or abort. */
  wait(after: string | undefined, timeoutMs: number, signal?: AbortSignal): Promise<void> {
    return new Promise<void>((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        signal?.removeEventListener('abort', done);
        this.#waiters.delete(waiter);
        resolve();
      };
      const waiter: Waiter = { after, wake: done };
      const timer = setTimeout(done, Math.max(0, timeoutMs));
      signal?.addEventListener('abort', done, { once: true });
      this.#waiters.add(waiter);
    });
  }

  /** Wake the waiters that have not seen `newest` yet. */
  wakeNewerThan(newest: string): void {
    for (const w of [...this.#waiters]) if (w.after === undefined || compareEventIds(newest, w.after) > 0) w.wake();
  }

  wakeAll(): void {
    for (const w of [...this.#waiters]) w.wake();
  }
}
