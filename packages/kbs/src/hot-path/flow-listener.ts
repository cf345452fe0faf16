import type { IncomingMessage, OutgoingHttpHeaders, RequestListener, ServerResponse } from 'node:http';
import type { TLSSocket } from 'node:tls';
import type { Logger } from 'pino';
import { getQueryParam } from 'hono/utils/url';
import { errorInformation } from '@keyhold/protocol';
import type { KbsDeps } from '../app-env.js';
import { errorAnswer } from '../error-answer.js';
import { enforceRateLimit } from '../rate-limit/middleware.js';
import { handleAttest } from '../routes/attest.js';
import { handleAuth } from '../routes/auth.js';
import { handleGetResource } from '../routes/resource.js';
import type { FlowAnswer, FlowExchange, ResourceExchange } from './flow-exchange.js';
import { acceptedRequestId, REQUEST_ID_HEADER, SECURITY_HEADERS } from './hot-routes.js';
import { cookieIn, incomingHeader } from './node-request.js';
import { readJsonIncoming } from './read-body.js';

/**
 * The attestation flow served by node directly: `POST /kbs/v0/auth`, `POST /kbs/v0/attest` and
 * `GET /kbs/v0/resource/<repository>/<type>/<tag>` go from node's request to the handlers
 * (routes/auth.ts, attest.ts, resource.ts) and back to node's response without Hono, which for
 * these routes would build a web `Request`, a context, a middleware chain and a `Response` per
 * request — a measurable share of a flow's CPU (issue 11). Every other request, and any flow
 * request this matcher does not recognise exactly (HEAD, percent-encoded or unusual paths), goes to
 * `fallback` (Hono), which serves the same handlers through flow-on-hono.ts.
 *
 * What Hono's middleware does for every route is done here too, and tested to match
 * (flow-listener.test.ts): the request id and security headers of hot-routes.ts, the `/auth` rate
 * limit, the request-duration metric labelled with the route pattern, errors as Trustee's
 * `{"type","detail"}` body through the same `errorAnswer`, the body caps and content-type check
 * of read-body.ts, and the request log line at debug level.
 */
export function flowRequestListener(deps: KbsDeps, fallback: RequestListener): RequestListener {
  return (req, res) => {
    const match = matchFlowRoute(req.method, req.url);
    if (match === undefined) {
      fallback(req, res);
      return;
    }
    serveFlow(deps, match, req, res).catch((err: unknown) => lastResort(deps, res, err));
  };
}

/**
 * A failure outside the handler's own error handling (writing the answer itself failed): never an
 * unhandled rejection that would end the process; the client gets a bare 500 or a closed socket.
 */
function lastResort(deps: KbsDeps, res: ServerResponse, err: unknown): void {
  deps.logger.error({ err: err instanceof Error ? err.name : typeof err }, 'flow request failed while answering');
  if (!res.headersSent && !res.destroyed) {
    res.writeHead(500, { 'content-type': 'application/json' });
    res.end(JSON.stringify(errorInformation('InternalError', 'internal error')));
  } else {
    res.destroy();
  }
}

/** Which flow route a request is for, as exactly as Hono would route it; undefined leaves it to Hono. */
export interface FlowRoute {
  readonly route: 'auth' | 'attest' | 'resource';
  /** The route pattern, the metrics label Hono's `routePath` gives. */
  readonly pattern: string;
  /** For `resource`: `<repository>/<type>/<tag>`. */
  readonly resourcePath?: string;
}

const AUTH: FlowRoute = { route: 'auth', pattern: '/kbs/v0/auth' };
const ATTEST: FlowRoute = { route: 'attest', pattern: '/kbs/v0/attest' };
const RESOURCE_PATTERN = '/kbs/v0/resource/:repository/:type/:tag';
const RESOURCE_PREFIX = '/kbs/v0/resource/';
/**
 * A resource path node serves itself: three non-empty segments of characters that need no decoding.
 * Anything else (percent-encoding, empty or extra segments) is Hono's to route and decode, so both
 * paths never disagree about what was asked for; the handler validates the path either way.
 */
const PLAIN_RESOURCE_PATH = /^[A-Za-z0-9._~-]+\/[A-Za-z0-9._~-]+\/[A-Za-z0-9._~-]+$/;

export function matchFlowRoute(method: string | undefined, url: string | undefined): FlowRoute | undefined {
  if (url === undefined || url.charCodeAt(0) !== 0x2f /* / */) return undefined;
  const q = url.indexOf('?');
  const path = q === -1 ? url : url.slice(0, q);
  if (method === 'POST') {
    // Hono answers a query on these routes the same way (it is ignored); a path with anything more is its own.
    if (path === AUTH.pattern) return AUTH;
    if (path === ATTEST.pattern) return ATTEST;
    return undefined;
  }
  if (method !== 'GET' || !path.startsWith(RESOURCE_PREFIX)) return undefined;
  const resourcePath = path.slice(RESOURCE_PREFIX.length);
  return PLAIN_RESOURCE_PATH.test(resourcePath) ? { route: 'resource', pattern: RESOURCE_PATTERN, resourcePath } : undefined;
}

/** The security headers, written with every flow answer (lower-case, as node-server writes Hono's). */
const SECURITY_HEADER_ENTRIES: readonly (readonly [string, string])[] = SECURITY_HEADERS.map(([name, value]) => [name.toLowerCase(), value]);

async function serveFlow(deps: KbsDeps, match: FlowRoute, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const start = performance.now();
  const requestId = acceptedRequestId(incomingHeader(req, 'x-request-id'));
  let log: Logger | undefined;
  const url = req.url ?? '';
  const exchange: ResourceExchange = {
    deps,
    requestId,
    // A child logger only when something is logged: most flow requests log nothing at info level.
    get log() {
      return (log ??= deps.logger.child({ req: requestId }));
    },
    clientAddress: () => req.socket.remoteAddress ?? 'unknown',
    secure: (req.socket as Partial<TLSSocket>).encrypted === true,
    header: (name) => incomingHeader(req, name),
    cookie: (name) => cookieIn(incomingHeader(req, 'cookie'), name),
    readJson: (maxBytes) => readJsonIncoming(req, res, maxBytes),
    resourcePath: match.resourcePath ?? '',
    // Hono's query parser on the same URL (first value per name, decoded as Hono decodes).
    query: match.route === 'resource' ? queryOf(url) : NO_QUERY,
  };
  let status: number;
  let body: string;
  const headers: OutgoingHttpHeaders = {};
  try {
    const answer = await handle(match, exchange);
    status = 200;
    body = JSON.stringify(answer.body);
    if (answer.setCookie !== undefined) headers['set-cookie'] = answer.setCookie;
  } catch (err) {
    const answer = errorAnswer(err, exchange.log, deps);
    status = answer.status;
    body = JSON.stringify(answer.body);
    if (answer.retryAfterSec !== undefined) headers['retry-after'] = String(answer.retryAfterSec);
  }
  const seconds = (performance.now() - start) / 1000;
  deps.owners?.metrics?.observeRequest({ method: req.method ?? 'GET', route: match.pattern, status }, seconds);
  if (deps.logger.isLevelEnabled('debug')) exchange.log.debug({ method: req.method, route: match.pattern, status, ms: Math.round(seconds * 1000) }, 'request');
  // The client went away while the request was served: nothing to write to.
  if (res.destroyed || res.headersSent) return;
  headers['content-type'] = 'application/json';
  headers['content-length'] = Buffer.byteLength(body);
  headers[REQUEST_ID_HEADER.toLowerCase()] = requestId;
  for (const [name, value] of SECURITY_HEADER_ENTRIES) headers[name] = value;
  res.writeHead(status, headers);
  res.end(body);
}

function handle(match: FlowRoute, x: ResourceExchange): Promise<FlowAnswer> {
  switch (match.route) {
    case 'auth':
      return authWithRateLimit(x);
    case 'attest':
      return handleAttest(x);
    case 'resource':
      return handleGetResource(x);
  }
}

async function authWithRateLimit(x: FlowExchange): Promise<FlowAnswer> {
  // The per-client `/auth` limit (ownerMiddleware does the same for Hono), before any work is done.
  await enforceRateLimit(x, 'auth');
  return handleAuth(x);
}

const NO_QUERY: Readonly<Record<string, string>> = Object.freeze({});

function queryOf(url: string): Record<string, string> {
  if (!url.includes('?')) return {};
  // Hono's parser looks for the query after the scheme and authority; any 8-character origin will do.
  return (getQueryParam(`http://h${url}`) as Record<string, string> | undefined) ?? {};
}
