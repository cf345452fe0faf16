import { createRateLimiter, type RateLimiter } from '../../rate-limit/token-bucket.js';
import type { RateLimitDecision, RateLimitRule, RateLimitState } from '../ports.js';

const MAX_RULES = 64;

export function checkRateLimitRule(rule: RateLimitRule): void {
  if (typeof rule !== 'object' || rule === null || !(rule.ratePerSec > 0) || !Number.isFinite(rule.ratePerSec) || !(rule.burst >= 1) || !Number.isFinite(rule.burst)) {
    throw new TypeError('rate limit rule needs ratePerSec > 0 and burst >= 1');
  }
}

/** Token buckets in process memory (embedded), one bounded bucket map per rule (token-bucket.ts). */
export class MemoryRateLimits implements RateLimitState {
  readonly #limiters = new Map<string, RateLimiter>();
  readonly #maxKeys: number | undefined;

  constructor(options: { readonly maxKeys?: number } = {}) {
    this.#maxKeys = options.maxKeys;
  }

  async take(key: string, rule: RateLimitRule): Promise<RateLimitDecision> {
    checkRateLimitRule(rule);
    if (typeof key !== 'string') throw new TypeError('rate limit key must be a string');
    const id = `${rule.ratePerSec}/${rule.burst}`;
    let limiter = this.#limiters.get(id);
    if (limiter === undefined) {
      if (this.#limiters.size >= MAX_RULES) throw new TypeError(`at most ${MAX_RULES} distinct rate limit rules`);
      limiter = createRateLimiter({ ratePerSec: rule.ratePerSec, burst: rule.burst, ...(this.#maxKeys !== undefined ? { maxKeys: this.#maxKeys } : {}) });
      this.#limiters.set(id, limiter);
    }
    const r = limiter.take(key);
    return { allowed: r.allowed, retryAfterMs: r.retryAfterMs };
  }
}
