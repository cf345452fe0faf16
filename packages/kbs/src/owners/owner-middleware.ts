import type { MiddlewareHandler } from 'hono';
import { routePath } from 'hono/route';
import type { KbsEnv } from '../app-env.js';
import { ERROR_TABLE, KbsError } from '../errors.js';
import { enforceRateLimit } from '../rate-limit/middleware.js';

/**
 * Runs first on every request: times it for `/metrics` (labelled by the matched route pattern,
 * never the raw path, so label sets stay bounded) and applies the `/kbs/v0/auth` rate limit before
 * any work is done. The admin limit is applied in the admin middleware, before token checks.
 */
export const ownerMiddleware: MiddlewareHandler<KbsEnv> = async (c, next) => {
  const metrics = c.get('deps').owners?.metrics;
  const start = performance.now();
  let thrown: unknown;
  try {
    if (c.req.method === 'POST' && c.req.path === '/kbs/v0/auth') await enforceRateLimit(c, 'auth');
    await next();
  } catch (err) {
    thrown = err;
    throw err;
  } finally {
    if (metrics !== undefined) {
      let route = routePath(c, -1);
      if (route === '*' || route === '/*' || route === '/kbs/*') route = 'unmatched';
      // An error thrown here (the rate limit) is rendered by onError after this finally runs.
      const status = thrown instanceof KbsError ? ERROR_TABLE[thrown.code].status : thrown !== undefined ? 500 : c.res.status;
      metrics.observeRequest({ method: c.req.method, route, status }, (performance.now() - start) / 1000);
    }
  }
};
