import type { Context, MiddlewareHandler, Next } from 'hono';
import type { KbsEnv } from '../app-env.js';
import { nodeOutgoingOf, requestHeader } from './node-request.js';

/**
 * The three requests of every attestation flow — `POST /kbs/v0/auth`, `POST /kbs/v0/attest`,
 * `GET /kbs/v0/resource/...` — which the KBS serves at a far higher rate than anything else. On
 * them the app skips Hono's `bodyLimit` (the handlers read their JSON bodies with their own cap,
 * hot-path/read-body.ts) and writes the response headers of `requestId()` and `secureHeaders()`
 * with `hotRouteHeaders` below; every other route keeps Hono's middleware.
 */
export function isHotRoute(c: Context): boolean {
  const method = c.req.method;
  const path = c.req.path;
  if (method === 'POST') return path === '/kbs/v0/auth' || path === '/kbs/v0/attest';
  return (method === 'GET' || method === 'HEAD') && path.startsWith('/kbs/v0/resource/');
}

/**
 * What Hono's `secureHeaders()` sets with its default options (hono 4.x), in its order. The app
 * test compares a hot route's headers with a Hono-served route's, so a change in Hono's defaults
 * shows up as a failing test rather than as a silent difference.
 */
export const SECURITY_HEADERS: readonly (readonly [string, string])[] = [
  ['Cross-Origin-Resource-Policy', 'same-origin'],
  ['Cross-Origin-Opener-Policy', 'same-origin'],
  ['Origin-Agent-Cluster', '?1'],
  ['Referrer-Policy', 'no-referrer'],
  ['Strict-Transport-Security', 'max-age=15552000; includeSubDomains'],
  ['X-Content-Type-Options', 'nosniff'],
  ['X-DNS-Prefetch-Control', 'off'],
  ['X-Download-Options', 'noopen'],
  ['X-Frame-Options', 'SAMEORIGIN'],
  ['X-Permitted-Cross-Domain-Policies', 'none'],
  ['X-XSS-Protection', '0'],
];

export const REQUEST_ID_HEADER = 'X-Request-Id';
const MAX_REQUEST_ID_CHARS = 255;
const REQUEST_ID_CHARS = /[^\w\-=]/;

/**
 * The request id and security headers of a hot route, as `requestId()` + `secureHeaders()` make
 * them: the client's `X-Request-Id` when it is at most 255 characters of `[A-Za-z0-9_=-]`, else a
 * random UUID, stored as `requestId` and echoed; the security headers on every response, errors
 * included. On node the headers go straight onto node's response (`setHeader`; node merges them
 * into the response head), so the handlers' responses stay plain objects that @hono/node-server
 * writes without building Fetch `Headers`; elsewhere they go through `c.header()`.
 */
export const hotRouteHeaders: MiddlewareHandler<KbsEnv> = (c, next) => {
  const id = acceptedRequestId(requestHeader(c, 'x-request-id'));
  c.set('requestId', id);
  const outgoing = nodeOutgoingOf(c);
  if (outgoing === undefined) return withHeadersAfter(c, next, id);
  outgoing.setHeader(REQUEST_ID_HEADER, id);
  for (const [name, value] of SECURITY_HEADERS) outgoing.setHeader(name, value);
  return next();
};

/** The client's `X-Request-Id` when acceptable, else a fresh random UUID. */
export function acceptedRequestId(id: string | undefined): string {
  // SECURITY: a client-chosen id reaches the logs and the audit trail only when short and of a
  // harmless alphabet (log injection), exactly as Hono's requestId() checks it.
  if (id === undefined || id === '' || id.length > MAX_REQUEST_ID_CHARS || REQUEST_ID_CHARS.test(id)) return crypto.randomUUID();
  return id;
}

/** Without a node response: Hono's way, headers set on the response once the handler made it. */
async function withHeadersAfter(c: Context<KbsEnv>, next: Next, id: string): Promise<void> {
  c.header(REQUEST_ID_HEADER, id);
  await next();
  for (const [name, value] of SECURITY_HEADERS) c.res.headers.set(name, value);
}
