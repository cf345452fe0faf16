import type { Context } from 'hono';
import type { KbsEnv } from '../app-env.js';
import { KbsError } from '../errors.js';
import { clientAddress } from '../owners/client-address.js';

export type RateLimitScope = 'auth' | 'admin';

/**
 * Take one token from the client address's bucket for `scope`; refuse with 429 RateLimited and a
 * `retry-after` when it is empty. Refusals are counted in metrics but not written to the audit
 * trail, so a flood cannot also flood the log.
 */
export function enforceRateLimit(c: Context<KbsEnv>, scope: RateLimitScope): void {
  const owners = c.get('deps').owners;
  const limiter = owners?.rateLimits?.[scope];
  if (limiter === undefined) return;
  const r = limiter.take(`${scope}:${clientAddress(c)}`);
  // SECURITY: bounds how fast one client can open sessions or guess admin tokens (brute force, resource exhaustion).
  if (!r.allowed) {
    owners?.metrics?.rateLimitHit(scope);
    throw new KbsError('RATE_LIMITED', `too many ${scope} requests from this client; retry later`, { retryAfterSec: Math.max(1, Math.ceil(r.retryAfterMs / 1000)) });
  }
}
