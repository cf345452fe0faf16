/**
 * When `keyhold-agent run` attests next: pure arithmetic, so the cadence is testable without timers.
 *
 * - After a success (or a refusal, which is an answer and not an outage): the interval, jittered
 *   by ±10 % so a fleet started together does not attest in lock step, and never later than the
 *   point where the token would have less than a third of its lifetime left (a fresh token is kept).
 * - After an error (KBS unreachable or 5xx, TPM busy): exponential backoff from one second (or the
 *   interval when shorter), doubling per consecutive error, capped at max(interval, 60 s), jittered.
 */

export interface ScheduleInput {
  readonly intervalMs: number;
  /** Consecutive errors so far (0 after a success or a refusal). */
  readonly consecutiveErrors: number;
  /** Milliseconds the current token stays valid (undefined: no token). */
  readonly tokenRemainingMs?: number | undefined;
  /** Milliseconds the token was valid for when issued (undefined: no token). */
  readonly tokenLifetimeMs?: number | undefined;
  /** A uniform random number in [0, 1); Math.random by default. */
  readonly random?: () => number;
}

/** The ±fraction applied to every delay. */
export const JITTER_FRACTION = 0.1;
/** The first backoff delay after an error (or the interval when that is shorter). */
export const INITIAL_BACKOFF_MS = 1000;
/** The backoff never grows past max(interval, this). */
export const MAX_BACKOFF_FLOOR_MS = 60_000;
/** Never schedule sooner than this (a zero or negative delay would spin). */
export const MIN_DELAY_MS = 100;

/** `value` moved by a uniform ±{@link JITTER_FRACTION}. */
export function jitter(value: number, random: () => number = Math.random): number {
  return value * (1 + JITTER_FRACTION * (2 * random() - 1));
}

/** The un-jittered backoff after `consecutiveErrors` (≥ 1) errors. */
export function backoffMs(intervalMs: number, consecutiveErrors: number): number {
  const first = Math.min(INITIAL_BACKOFF_MS, intervalMs);
  const cap = Math.max(intervalMs, MAX_BACKOFF_FLOOR_MS);
  // 2^30 s is far past any cap; bounding the exponent keeps the arithmetic finite.
  return Math.min(cap, first * 2 ** Math.min(Math.max(consecutiveErrors - 1, 0), 30));
}

/** Milliseconds until the next attestation. */
export function nextAttemptDelayMs(input: ScheduleInput): number {
  const random = input.random ?? Math.random;
  if (!(input.intervalMs > 0)) throw new TypeError('intervalMs must be positive');
  if (input.consecutiveErrors > 0) return Math.max(MIN_DELAY_MS, Math.round(jitter(backoffMs(input.intervalMs, input.consecutiveErrors), random)));
  let delay = jitter(input.intervalMs, random);
  if (input.tokenRemainingMs !== undefined && input.tokenLifetimeMs !== undefined && input.tokenLifetimeMs > 0) {
    // Re-attest while a third of the token's lifetime is left, when that comes before the interval.
    delay = Math.min(delay, input.tokenRemainingMs - input.tokenLifetimeMs / 3);
  }
  return Math.max(MIN_DELAY_MS, Math.round(delay));
}
