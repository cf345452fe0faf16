import type { MiddlewareHandler } from 'hono';
import type { KbsEnv } from '../app-env.js';
import { enforceRateLimit } from '../rate-limit/middleware.js';
import { routePath } from 'hono/route';
import { auditEvent, errorCode, wasAdminAudited } from '../owners/record-event.js';
import { requireVerifiedClientCertificate } from './client-certificate.js';

/**
 * Guards every admin endpoint: the per-client admin rate limit first (before any signature work),
 * then, with `[admin] client_ca`, a verified TLS client certificate (mutual TLS), then the caller's
 * signed, unexpired admin token and its role's ACL. Refused calls are written to
 * the audit trail (who could not be established, so the client address and the reason code).
 */
export const adminMiddleware: MiddlewareHandler<KbsEnv> = async (c, next) => {
  const deps = c.get('deps');
  await enforceRateLimit(c, 'admin');
  let principal;
  try {
    if (deps.requireAdminClientCertificate === true) requireVerifiedClientCertificate(c);
    // SECURITY: every admin endpoint checks the caller's signed, unexpired admin token and role first.
    principal = await deps.adminAuth.authorize({ authorizationHeader: c.req.header('authorization'), method: c.req.method, path: c.req.path });
  } catch (err) {
    await auditEvent(c, 'admin', { action: `${c.req.method} ${c.req.path.slice(0, 200)}`, verdict: 'refused', reason: errorCode(err) });
    throw err;
  }
  c.set('admin', principal);
  await next();
  // Every successful admin change is on record: handlers that know more (policy id and version,
  // resource path) write their own; any other (EK allowlist, nodes, CA store, ...) gets one here.
  if (c.req.method !== 'GET' && c.req.method !== 'HEAD' && c.res.status < 400 && !wasAdminAudited(c)) {
    await auditEvent(c, 'admin', { actor: principal.identity, action: `${c.req.method} ${routePath(c, -1)}`, verdict: 'ok' });
  }
};
