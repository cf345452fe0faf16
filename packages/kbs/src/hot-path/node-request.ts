import { IncomingMessage, type ServerResponse } from 'node:http';
import type { Context } from 'hono';
import { parse as parseCookies } from 'hono/utils/cookie';

/**
 * Request headers and cookies on the hot routes, read from node's own parsed request when the KBS
 * runs on @hono/node-server. Hono's `c.req.header()` and `getCookie()` go through the web
 * `Request`'s `Headers`, which node-server builds from every raw header on first use (a measurable
 * share of a flow's CPU); node has already parsed the same headers into a plain object. Without a
 * node request (in-process `app.request()` tests, other runtimes) these fall back to Hono's.
 */

/** The untouched node request behind this context, if there is one. */
export function nodeIncomingOf(c: Context): IncomingMessage | undefined {
  const incoming = (c.env as { incoming?: unknown } | undefined)?.incoming;
  return incoming instanceof IncomingMessage ? incoming : undefined;
}

/** The node response this context will be written to, if there is one. */
export function nodeOutgoingOf(c: Context): ServerResponse | undefined {
  const outgoing = (c.env as { outgoing?: { setHeader?: unknown } } | undefined)?.outgoing;
  return typeof outgoing?.setHeader === 'function' ? (outgoing as ServerResponse) : undefined;
}

/**
 * One request header (`name` in lower case), as Hono's `c.req.header(name)` returns it. Node joins
 * repeated headers with ", " as the Fetch `Headers` do (except `cookie`, joined with "; ", which
 * is what a cookie header means) and drops repeats of single-valued ones such as `authorization`
 * (the first wins), where `Headers` would join them — a joined value fails every check anyway.
 */
export function requestHeader(c: Context, name: string): string | undefined {
  const incoming = nodeIncomingOf(c);
  return incoming === undefined ? c.req.header(name) : incomingHeader(incoming, name);
}

/** A cookie's value, parsed with Hono's cookie parser (as `getCookie(c, name)`). */
export function requestCookie(c: Context, name: string): string | undefined {
  return cookieIn(requestHeader(c, 'cookie'), name);
}

/** One header of a node request, as `requestHeader` reads it. */
export function incomingHeader(incoming: IncomingMessage, name: string): string | undefined {
  const v = incoming.headers[name];
  return Array.isArray(v) ? v.join(', ') : v;
}

/** A cookie's value in a `Cookie` header, parsed with Hono's cookie parser. */
export function cookieIn(header: string | undefined, name: string): string | undefined {
  if (header === undefined || header === '') return undefined;
  return parseCookies(header, name)[name];
}
