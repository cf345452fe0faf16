import { describe, expect, it } from 'vitest';
import { backoffMs, jitter, nextAttemptDelayMs, MIN_DELAY_MS } from './retry-schedule.js';

const fixed = (r: number) => () => r;

describe('retry schedule', () => {
  it('jitters the interval by at most ±10 %, over the whole range', () => {
    expect(jitter(60_000, fixed(0))).toBe(54_000);
    expect(jitter(60_000, fixed(0.5))).toBe(60_000);
    expect(jitter(60_000, fixed(0.999999))).toBeCloseTo(66_000, -1);
    const seen = Array.from({ length: 2000 }, () => nextAttemptDelayMs({ intervalMs: 60_000, consecutiveErrors: 0 }));
    expect(Math.min(...seen)).toBeGreaterThanOrEqual(54_000);
    expect(Math.max(...seen)).toBeLessThanOrEqual(66_000);
    // Not constant: a fleet started together spreads out.
    expect(new Set(seen).size).toBeGreaterThan(100);
  });

  it('backs off exponentially from 1 s after errors, capped at max(interval, 60 s)', () => {
    expect([1, 2, 3, 4, 5, 6, 7, 8, 50].map((n) => backoffMs(60_000, n))).toEqual([1000, 2000, 4000, 8000, 16_000, 32_000, 60_000, 60_000, 60_000]);
    expect(backoffMs(600_000, 12)).toBe(600_000);
    expect(backoffMs(600_000, 1_000_000)).toBe(600_000);
    // A 2 s interval: starts at 1 s, capped at 60 s (not at the interval).
    expect([1, 2, 3, 10].map((n) => backoffMs(2000, n))).toEqual([1000, 2000, 4000, 60_000]);
    // An interval under 1 s starts at the interval.
    expect(backoffMs(500, 1)).toBe(500);
    expect(nextAttemptDelayMs({ intervalMs: 60_000, consecutiveErrors: 3, random: fixed(0.5) })).toBe(4000);
  });

  it('re-attests before the token has less than a third of its lifetime left', () => {
    // 5-minute token, 10-minute interval: next attempt when 100 s are left, i.e. after 200 s.
    expect(nextAttemptDelayMs({ intervalMs: 600_000, consecutiveErrors: 0, tokenRemainingMs: 300_000, tokenLifetimeMs: 300_000, random: fixed(0.5) })).toBe(200_000);
    // A long token does not delay the interval.
    expect(nextAttemptDelayMs({ intervalMs: 60_000, consecutiveErrors: 0, tokenRemainingMs: 3_600_000, tokenLifetimeMs: 3_600_000, random: fixed(0.5) })).toBe(60_000);
    // Never below the floor, even when the token is about to lapse.
    expect(nextAttemptDelayMs({ intervalMs: 60_000, consecutiveErrors: 0, tokenRemainingMs: 10, tokenLifetimeMs: 300_000 })).toBe(MIN_DELAY_MS);
  });

  it('refuses a non-positive interval (programming error)', () => {
    expect(() => nextAttemptDelayMs({ intervalMs: 0, consecutiveErrors: 0 })).toThrow(TypeError);
  });
});
