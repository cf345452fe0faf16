import { systemClock, type Clock } from '../clock.js';
import { isKmsError, KmsError, type KmsErrorCode } from '../errors.js';
import type { SecretMetadata, SecretStore } from '../secret-store.js';

export interface RotationSchedulerOptions {
  readonly store: SecretStore;
  /** Time source (inject a manual clock in tests). Default: the system clock. */
  readonly clock?: Clock;
  /** Longest wait between two checks (default 60 000 ms, at least 100 ms). */
  readonly checkIntervalMs?: number;
  /** Shortest wait between two checks (default 1000 ms), so a failing store is not hammered. */
  readonly minIntervalMs?: number;
  /** Called after each scheduled check (the library does not log; the KBS can). */
  readonly onTick?: (report: RotationReport) => void;
}

export interface RotationReport {
  /** New versions created by this check. */
  readonly rotated: readonly SecretMetadata[];
  /** Keys that were due but changed under us (another KBS rotated them first): not an error. */
  readonly skipped: readonly string[];
  /** Keys that were due and could not be rotated, or `*` when the listing itself failed. */
  readonly failed: ReadonlyArray<{ readonly name: string; readonly code: KmsErrorCode }>;
  /** When the next key falls due (ms since epoch), if any key has a rotation period. */
  readonly nextDueAt: number | undefined;
}

/**
 * Rotates generated keys whose latest version is older than their rotation period. Each rotation
 * is a compare-and-set on the version it saw, so several KBS instances running schedulers against
 * one backend rotate a key once per period, not once per instance. Pruning to the key's
 * `keepVersions` happens in the store as part of the rotation.
 */
export class RotationScheduler {
  readonly #store: SecretStore;
  readonly #clock: Clock;
  readonly #maxIntervalMs: number;
  readonly #minIntervalMs: number;
  readonly #onTick: ((report: RotationReport) => void) | undefined;
  #timer: unknown;
  #running = false;
  #inFlight: Promise<unknown> | undefined;

  constructor(options: RotationSchedulerOptions) {
    this.#store = options.store;
    this.#clock = options.clock ?? systemClock;
    this.#maxIntervalMs = options.checkIntervalMs ?? 60_000;
    this.#minIntervalMs = options.minIntervalMs ?? 1000;
    this.#onTick = options.onTick;
    if (!Number.isInteger(this.#maxIntervalMs) || this.#maxIntervalMs < 100) throw new TypeError('checkIntervalMs is an integer >= 100');
    if (!Number.isInteger(this.#minIntervalMs) || this.#minIntervalMs < 1 || this.#minIntervalMs > this.#maxIntervalMs) {
      throw new TypeError('minIntervalMs is an integer in 1..checkIntervalMs');
    }
  }

  get running(): boolean {
    return this.#running;
  }

  /** Start checking: once now, then whenever a key falls due (at most checkIntervalMs apart). */
  start(): void {
    if (this.#running) return;
    this.#running = true;
    this.#schedule(0);
  }

  /** Stop, and wait for a check in progress to finish. */
  async stop(): Promise<void> {
    this.#running = false;
    if (this.#timer !== undefined) this.#clock.clearTimeout(this.#timer);
    this.#timer = undefined;
    await this.#inFlight;
  }

  /** One check: rotate every generated key that is due. Never throws for store failures. */
  async runOnce(): Promise<RotationReport> {
    const rotated: SecretMetadata[] = [];
    const skipped: string[] = [];
    const failed: Array<{ name: string; code: KmsErrorCode }> = [];
    let listing: SecretMetadata[];
    try {
      listing = await this.#store.list();
    } catch (err) {
      return { rotated, skipped, failed: [{ name: '*', code: codeOf(err) }], nextDueAt: undefined };
    }
    let nextDueAt: number | undefined;
    for (const m of listing) {
      const period = m.generated?.rotationPeriodMs;
      if (period === undefined) continue;
      const dueAt = m.createdAt.getTime() + period;
      if (dueAt > this.#clock.now()) {
        nextDueAt = Math.min(nextDueAt ?? dueAt, dueAt);
        continue;
      }
      try {
        const fresh = await this.#store.rotate(m.name, { ifVersion: m.version });
        rotated.push(fresh);
        const next = fresh.createdAt.getTime() + period;
        nextDueAt = Math.min(nextDueAt ?? next, next);
      } catch (err) {
        // Another writer changed the key since we listed it (e.g. another KBS rotated it first).
        if (isKmsError(err, 'KMS_CONFLICT') || isKmsError(err, 'KMS_NOT_FOUND')) skipped.push(m.name);
        else {
          failed.push({ name: m.name, code: codeOf(err) });
          // Still due: retry after the minimum interval.
          nextDueAt = Math.min(nextDueAt ?? dueAt, dueAt);
        }
      }
    }
    return { rotated, skipped, failed, nextDueAt };
  }

  #schedule(delayMs: number): void {
    this.#timer = this.#clock.setTimeout(() => {
      this.#timer = undefined;
      const tick = this.runOnce().then((report) => {
        if (!this.#running) return;
        this.#onTick?.(report);
        const until = report.nextDueAt === undefined ? this.#maxIntervalMs : report.nextDueAt - this.#clock.now();
        this.#schedule(Math.min(this.#maxIntervalMs, Math.max(this.#minIntervalMs, until)));
      });
      this.#inFlight = tick;
    }, delayMs);
  }
}

function codeOf(err: unknown): KmsErrorCode {
  return err instanceof KmsError ? err.code : 'KMS_BACKEND_ERROR';
}
