import { KbsError } from '../errors.js';
import { requestScope, type ScopeSource } from '../request-scope.js';

export type RateLimitScope = 'auth' | 'admin';

/** Longest bucket key sent to the state backend (scope + client address). */
const MAX_KEY_CHARS = 256;

/**
 * Take one token from the client address's bucket for `scope` (in the state backend, so every
 * replica shares one bucket per client); refuse with 429 RateLimited and a `retry-after` when it is
 * empty. Refusals are counted in metrics but not written to the audit trail, so a flood cannot also
 * flood the log. A backend outage refuses the request (503) rather than skip the limit.
 */
export async function enforceRateLimit(source: ScopeSource, scope: RateLimitScope): Promise<void> {
  const request = requestScope(source);
  const deps = request.deps;
  const rule = deps.owners?.rateLimits?.[scope];
  if (rule === undefined) return;
  const key = `${scope}:${request.clientAddress()}`.slice(0, MAX_KEY_CHARS);
  const r = await deps.state.rateLimits.take(key, rule);
  // SECURITY: bounds how fast one client can open sessions or guess admin tokens (brute force, resource exhaustion).
  if (!r.allowed) {
    deps.owners?.metrics?.rateLimitHit(scope);
    throw new KbsError('RATE_LIMITED', `too many ${scope} requests from this client; retry later`, { retryAfterSec: Math.max(1, Math.ceil(r.retryAfterMs / 1000)) });
  }
}
