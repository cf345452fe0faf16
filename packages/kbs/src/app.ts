import { Hono, type Context, type MiddlewareHandler, type Next } from 'hono';
import type { Logger } from 'pino';
import { bodyLimit } from 'hono/body-limit';
import { HTTPException } from 'hono/http-exception';
import { requestId } from 'hono/request-id';
import { secureHeaders } from 'hono/secure-headers';
import { errorInformation } from '@keyhold/protocol';
import type { KbsDeps, KbsEnv } from './app-env.js';
import { ERROR_TABLE, KbsError } from './errors.js';
import { handleAuth } from './routes/auth.js';
import { handleAttest } from './routes/attest.js';
import { handleGetResource } from './routes/resource.js';
import { handleDeleteResource, handleSetResource } from './routes/admin-resource.js';
import { handleListReferenceValues, handleSetReferenceValue } from './routes/reference-value.js';
import {
  handleAddEkAllowlist,
  handleAddEkCa,
  handleListEkAllowlist,
  handleListEkCa,
  handleRemoveEkAllowlist,
  handleRemoveEkCa,
  handleRemoveNode,
  handleRevokeNode,
} from './routes/admin-identity.js';
import { adminMiddleware } from './admin/admin-middleware.js';
import { ownerMiddleware } from './owners/owner-middleware.js';
import { registerOwnerRoutes } from './routes/owner-routes.js';
import { handleGetNode, handleListNodes, handleUnbanNode } from './routes/admin-nodes.js';
import { handleAdminEvents, handleRepositoryEvents } from './routes/admin-events.js';
import { handleGetNodeCa, handleNodeCertificate } from './routes/node-certificate.js';
import { hotRouteHeaders, isHotRoute } from './hot-path/hot-routes.js';
import { describeStorageFailure } from './storage/storage-failure.js';

const RESOURCE = '/kbs/v0/resource/:repository/:type/:tag';

/** Build the KBS HTTP app. All I/O comes in through `deps`; `main` wires real servers. */
export function createApp(deps: KbsDeps): Hono<KbsEnv> {
  const app = new Hono<KbsEnv>();

  // Request id and security headers: Hono's middleware, except on the three routes of every
  // attestation flow, where hotRouteHeaders writes the same headers at a fraction of the cost.
  const withRequestId = requestId();
  const withSecureHeaders = secureHeaders();
  app.use('*', (c, next) =>
    isHotRoute(c)
      ? hotRouteHeaders(c, next)
      : withRequestId(c, async () => {
          await withSecureHeaders(c, next);
        }),
  );
  app.use('*', (c, next) => {
    c.set('deps', deps);
    const log = deps.logger.child({ req: c.get('requestId') });
    c.set('log', log);
    // Timed and logged only at debug level: otherwise no async layer of its own.
    return log.isLevelEnabled('debug') ? logRequest(c, next, log) : next();
  });
  app.use('*', ownerMiddleware);
  const limitBody = bodyLimit({
    maxSize: deps.maxBodyBytes,
    onError: () => {
      // SECURITY: caps the memory one request can pin (resource exhaustion).
      throw new KbsError('PAYLOAD_TOO_LARGE', `request body exceeds ${deps.maxBodyBytes} bytes`);
    },
  });
  app.use('/kbs/*', (c, next) => {
    // GET and HEAD requests never have a body (fetch and node-server both refuse one), so the limit
    // would pass them unchanged; skipping it saves building a full web Request for each. The hot
    // POST routes (/auth, /attest) read their bodies with readJsonBody, which enforces the same cap
    // on node's own request stream (hot-path/read-body.ts) — hono's limit would build that Request.
    if (c.req.method === 'GET' || c.req.method === 'HEAD' || isHotRoute(c)) return next();
    return limitBody(c, next);
  });

  const admin: MiddlewareHandler<KbsEnv> = adminMiddleware;

  app.get('/healthz', (c) => c.json({ status: 'ok' }));
  app.get('/kbs/v0/token-jwks', (c) => c.json(deps.signer.jwks()));
  app.get('/.well-known/jwks.json', (c) => c.json(deps.signer.jwks()));

  app.post('/kbs/v0/auth', handleAuth);
  app.post('/kbs/v0/attest', handleAttest);
  app.get(RESOURCE, handleGetResource);
  app.post(RESOURCE, admin, handleSetResource);
  app.put(RESOURCE, admin, handleSetResource);
  app.delete(RESOURCE, admin, handleDeleteResource);
  app.post('/kbs/v0/reference-value', admin, handleSetReferenceValue);
  app.get('/kbs/v0/reference-value', admin, handleListReferenceValues);
  app.post('/kbs/v0/admin/ek-allowlist', admin, handleAddEkAllowlist);
  app.get('/kbs/v0/admin/ek-allowlist', admin, handleListEkAllowlist);
  app.delete('/kbs/v0/admin/ek-allowlist/:ekHash', admin, handleRemoveEkAllowlist);
  app.get('/kbs/v0/admin/nodes', admin, handleListNodes);
  app.get('/kbs/v0/admin/nodes/:nodeId', admin, handleGetNode);
  app.post('/kbs/v0/admin/nodes/:nodeId/unban', admin, handleUnbanNode);
  app.post('/kbs/v0/admin/nodes/:nodeId/revoke', admin, handleRevokeNode);
  app.delete('/kbs/v0/admin/nodes/:nodeId', admin, handleRemoveNode);
  app.post('/kbs/v0/admin/ek-ca', admin, handleAddEkCa);
  app.get('/kbs/v0/admin/ek-ca', admin, handleListEkCa);
  app.delete('/kbs/v0/admin/ek-ca/:sha256', admin, handleRemoveEkCa);
  // Continuous attestation (issue 13): the event stream, node certificates for SPIRE x509pop.
  app.get('/kbs/v0/admin/events', admin, handleAdminEvents);
  app.get('/kbs/v0/resources/:repository/events', admin, handleRepositoryEvents);
  app.get('/kbs/v0/node-ca', handleGetNodeCa);
  app.post('/kbs/v0/node-certificate', handleNodeCertificate);
  registerOwnerRoutes(app, admin);

  app.notFound((c) => c.json(errorInformation('InvalidRequestPath', `no endpoint ${c.req.method} ${c.req.path.slice(0, 200)}`), 404));
  app.onError((err, c) => renderError(err, c as Context<KbsEnv>));
  return app;
}

async function logRequest(c: Context<KbsEnv>, next: Next, log: Logger): Promise<void> {
  const start = performance.now();
  await next();
  log.debug({ method: c.req.method, route: c.req.routePath, status: c.res.status, ms: Math.round(performance.now() - start) }, 'request');
}

/** The single place errors become responses: Trustee's `{"type","detail"}` body. */
export function renderError(err: unknown, c: Context<KbsEnv>): Response {
  let kbsErr: KbsError;
  if (err instanceof KbsError) kbsErr = err;
  else if (err instanceof HTTPException && err.status === 413) kbsErr = new KbsError('PAYLOAD_TOO_LARGE', 'request body too large');
  else if (err instanceof HTTPException && err.status < 500) kbsErr = new KbsError('BAD_REQUEST', err.message || 'bad request');
  else if (isStorageUnavailable(err)) kbsErr = new KbsError('STORAGE_UNAVAILABLE', 'storage is unavailable, retry later', { cause: err });
  else kbsErr = new KbsError('INTERNAL', 'internal error', { cause: err });
  const { status, variant } = ERROR_TABLE[kbsErr.code];
  const log = c.get('log');
  // Which backend, where, and the chain of causes (codes, errno fields): what an operator needs to fix an outage.
  if (kbsErr.code === 'STORAGE_UNAVAILABLE') log?.error({ code: kbsErr.code, status, storage: describeStorageFailure(err, c.get('deps')?.storageEndpoints) }, 'storage unavailable');
  else if (status >= 500) log?.error({ code: kbsErr.code, err: describeCause(err) }, 'request failed');
  else log?.info({ code: kbsErr.code, status }, 'request refused');
  const res = c.json(errorInformation(variant, kbsErr.message), status);
  if (status === 429) res.headers.set('retry-after', String(kbsErr.retryAfterSec ?? 1));
  return res;
}

/**
 * Storage adapters and the state backend signal an outage with a `code` ending in `_UNAVAILABLE`;
 * the policy store and the audit sink with their `*_FAILED` codes (file or Redis unreadable or
 * unwritable); a compare-and-swap that kept losing with STATE_CONFLICT. All answer 503 (retry later).
 */
function isStorageUnavailable(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' && (/(^|_)UNAVAILABLE$/.test(code) || code === 'POLICY_STORE_FAILED' || code === 'AUDIT_SINK_FAILED' || code === 'STATE_CONFLICT');
}

function describeCause(err: unknown): string {
  if (err instanceof Error) return `${err.name}: ${(err as { code?: string }).code ?? ''}`;
  return typeof err;
}
