import type { Context, Handler } from 'hono';
import type { KbsEnv } from '../app-env.js';
import { clientAddress } from '../owners/client-address.js';
import type { FlowAnswer, FlowExchange, ResourceExchange } from './flow-exchange.js';
import { requestCookie, requestHeader } from './node-request.js';
import { readJsonRequest } from './read-body.js';

/** The attestation flow's handlers as Hono routes; errors go to the app's `onError` as for any route. */
export function flowOnHono(handler: (x: FlowExchange) => Promise<FlowAnswer>): Handler<KbsEnv> {
  return async (c) => answer(c, await handler(exchangeOf(c)));
}

/** The resource route: the exchange also carries the matched path and the query. */
export function resourceOnHono(handler: (x: ResourceExchange) => Promise<FlowAnswer>): Handler<KbsEnv> {
  return async (c) => {
    const x: ResourceExchange = { ...exchangeOf(c), resourcePath: `${c.req.param('repository')}/${c.req.param('type')}/${c.req.param('tag')}`, query: c.req.query() };
    return answer(c, await handler(x));
  };
}

function exchangeOf(c: Context<KbsEnv>): FlowExchange {
  return {
    deps: c.get('deps'),
    requestId: c.get('requestId'),
    log: c.get('log'),
    clientAddress: () => clientAddress(c),
    // Over HTTPS the session cookie is `Secure` (RFC 6265 §4.1.2.5).
    secure: c.req.url.startsWith('https:'),
    header: (name) => requestHeader(c, name),
    cookie: (name) => requestCookie(c, name),
    readJson: (maxBytes) => readJsonRequest(c, maxBytes),
  };
}

function answer(c: Context<KbsEnv>, a: FlowAnswer): Response {
  if (a.setCookie !== undefined) c.header('Set-Cookie', a.setCookie, { append: true });
  return c.json(a.body as object);
}
