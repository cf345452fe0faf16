import { describe, expect, it } from 'vitest';
import { createRateLimiter } from './token-bucket.js';

function clock() {
  let t = 1_000;
  return { now: () => t, advance: (ms: number) => (t += ms) };
}

describe('createRateLimiter', () => {
  it('allows a burst, then denies with retryAfterMs, then refills', () => {
    const c = clock();
    const rl = createRateLimiter({ ratePerSec: 2, burst: 5, nowMs: c.now });
    const burst = Array.from({ length: 7 }, () => rl.take('10.0.0.1'));
    expect(burst.map((r) => r.allowed)).toEqual([true, true, true, true, true, false, false]);
    expect(burst[4]?.remaining).toBe(0);
    expect(burst[5]?.retryAfterMs).toBe(500); // one token at 2/s
    c.advance(499);
    expect(rl.take('10.0.0.1').allowed).toBe(false);
    c.advance(1);
    expect(rl.take('10.0.0.1')).toEqual({ allowed: true, retryAfterMs: 0, remaining: 0 });
    c.advance(10_000); // refills only up to the burst
    expect(Array.from({ length: 6 }, () => rl.take('10.0.0.1').allowed).filter(Boolean)).toHaveLength(5);
  });

  it('keeps keys independent', () => {
    const c = clock();
    const rl = createRateLimiter({ ratePerSec: 1, burst: 1, nowMs: c.now });
    expect(rl.take('a').allowed).toBe(true);
    expect(rl.take('a').allowed).toBe(false);
    expect(rl.take('b').allowed).toBe(true);
  });

  it('bounds memory: evicts the least recently used beyond maxKeys and drops refilled buckets', () => {
    const c = clock();
    const rl = createRateLimiter({ ratePerSec: 1, burst: 2, maxKeys: 3, nowMs: c.now });
    for (const k of ['a', 'b', 'c']) rl.take(k);
    rl.take('a'); // a is now most recently used
    rl.take('d'); // evicts b
    expect(rl.size()).toBe(3);
    expect(rl.take('a').allowed).toBe(false); // a kept its (empty) bucket
    c.advance(2_000); // everything refills: buckets are dropped on the next sweep
    rl.take('e');
    expect(rl.size()).toBe(1);
    for (let i = 0; i < 1000; i++) rl.take(`k${i}`);
    expect(rl.size()).toBe(3);
  });

  it('truncates over-long keys and refuses bad options', () => {
    const rl = createRateLimiter({ ratePerSec: 1, burst: 1, nowMs: () => 0 });
    rl.take('x'.repeat(10_000));
    expect(rl.take('x'.repeat(300)).allowed).toBe(false);
    expect(() => createRateLimiter({ ratePerSec: 0, burst: 1 })).toThrow(TypeError);
    expect(() => createRateLimiter({ ratePerSec: 1, burst: 0 })).toThrow(TypeError);
    expect(() => rl.take('y', 2)).toThrow(TypeError);
  });
});
