export interface RateLimiterOptions {
  /** Tokens added per second (sustained request rate per key). */
  readonly ratePerSec: number;
  /** Bucket capacity (the burst a key may send at once). */
  readonly burst: number;
  /** Most keys tracked at once; the least recently used is evicted beyond it. Default 10 000. */
  readonly maxKeys?: number;
  /** Monotonic clock in milliseconds, injectable for tests. Default performance.now(). */
  readonly nowMs?: () => number;
}

export interface RateLimitResult {
  readonly allowed: boolean;
  /** When refused: milliseconds until `cost` tokens are available; 0 when allowed. */
  readonly retryAfterMs: number;
  /** Whole tokens left after this call. */
  readonly remaining: number;
}

export interface RateLimiter {
  /** Take `cost` tokens (default 1) from `key`'s bucket. */
  take(key: string, cost?: number): RateLimitResult;
  /** Keys currently tracked (for tests and metrics). */
  size(): number;
}

interface Bucket {
  tokens: number;
  updatedMs: number;
}

const MAX_KEY_CHARS = 256;

/**
 * A token bucket per client key (e.g. the client address). Memory is bounded: buckets that have
 * refilled completely are dropped (they are indistinguishable from new ones), and beyond `maxKeys`
 * the least recently used bucket is evicted. An attacker cycling through many keys can therefore
 * reset other keys' buckets only after pushing out `maxKeys` more recent ones; size `maxKeys` above
 * the expected number of concurrent clients.
 */
export function createRateLimiter(options: RateLimiterOptions): RateLimiter {
  const { ratePerSec, burst } = options;
  if (!(ratePerSec > 0) || !Number.isFinite(ratePerSec)) throw new TypeError('ratePerSec must be a positive number');
  if (!(burst >= 1) || !Number.isFinite(burst)) throw new TypeError('burst must be at least 1');
  const maxKeys = options.maxKeys ?? 10_000;
  if (!Number.isSafeInteger(maxKeys) || maxKeys < 1) throw new TypeError('maxKeys must be a positive integer');
  const nowMs = options.nowMs ?? (() => performance.now());
  const perMs = ratePerSec / 1000;
  const fullAfterMs = burst / perMs;
  // Map iteration order is insertion order: re-inserting on use keeps it least-recently-used first.
  const buckets = new Map<string, Bucket>();
  let lastSweepMs = nowMs();

  function sweep(now: number): void {
    // Drop buckets that are full again; they carry no state. Amortised: at most once per refill time.
    if (now - lastSweepMs < fullAfterMs) return;
    lastSweepMs = now;
    for (const [k, b] of buckets) if (now - b.updatedMs >= fullAfterMs) buckets.delete(k);
  }

  return {
    take(rawKey, cost = 1) {
      if (!(cost > 0) || cost > burst) throw new TypeError('cost must be in (0, burst]');
      // SECURITY: keys are bounded so a hostile key (e.g. a spoofed header) cannot grow memory.
      const key = rawKey.length > MAX_KEY_CHARS ? rawKey.slice(0, MAX_KEY_CHARS) : rawKey;
      const now = nowMs();
      sweep(now);
      const b = buckets.get(key);
      let tokens = burst;
      if (b !== undefined) {
        tokens = Math.min(burst, b.tokens + Math.max(0, now - b.updatedMs) * perMs);
        buckets.delete(key);
      }
      const allowed = tokens >= cost;
      if (allowed) tokens -= cost;
      buckets.set(key, { tokens, updatedMs: now });
      if (buckets.size > maxKeys) {
        const oldest = buckets.keys().next().value;
        if (oldest !== undefined) buckets.delete(oldest);
      }
      return { allowed, retryAfterMs: allowed ? 0 : Math.ceil((cost - tokens) / perMs), remaining: Math.floor(tokens) };
    },
    size() {
      return buckets.size;
    },
  };
}
