import { Hono, type Context, type MiddlewareHandler, type Next } from 'hono';
import type { Logger } from 'pino';
import { bodyLimit } from 'hono/body-limit';
import { requestId } from 'hono/request-id';
import { secureHeaders } from 'hono/secure-headers';
import { errorInformation } from '@keyhold/protocol';
import type { KbsDeps, KbsEnv } from './app-env.js';
import { KbsError } from './errors.js';
import { errorAnswer } from './error-answer.js';
import { handleAuth } from './routes/auth.js';
import { handleAttest } from './routes/attest.js';
import { handleGetResource } from './routes/resource.js';
import { flowOnHono, resourceOnHono } from './hot-path/flow-on-hono.js';
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

  // The attestation flow's routes: plain handlers of a FlowExchange (hot-path/flow-exchange.ts).
  app.post('/kbs/v0/auth', flowOnHono(handleAuth));
  app.post('/kbs/v0/attest', flowOnHono(handleAttest));
  app.get(RESOURCE, resourceOnHono(handleGetResource));
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
  const answer = errorAnswer(err, c.get('log'), c.get('deps'));
  const res = c.json(answer.body, answer.status);
  if (answer.retryAfterSec !== undefined) res.headers.set('retry-after', String(answer.retryAfterSec));
  return res;
}
