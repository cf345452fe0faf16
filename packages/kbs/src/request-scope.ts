import type { Context } from 'hono';
import type { Logger } from 'pino';
import type { KbsDeps, KbsEnv } from './app-env.js';
import { clientAddress } from './owners/client-address.js';

/**
 * What the audit trail, events, rate limits and continuous-attestation steps need to know about the
 * request they act for: the KBS's dependencies, the request's logger and id, and the client's
 * network address. A Hono route has it through its `Context`; the three attestation-flow handlers
 * through their `FlowExchange` (hot-path/flow-exchange.ts).
 */
export interface RequestScope {
  readonly deps: KbsDeps;
  readonly requestId: string;
  readonly log: Logger;
  /** The socket's peer address (forwarding headers are never read); `local` for in-process requests. */
  clientAddress(): string;
}

/** A Hono context or a flow exchange: anything a request is handled with. */
export type ScopeSource = Context<KbsEnv> | RequestScope;

/** The request scope of a Hono context (a view over its variables), or the scope itself. */
export function requestScope(source: ScopeSource): RequestScope {
  if (!isContext(source)) return source;
  return {
    deps: source.get('deps'),
    requestId: source.get('requestId'),
    log: source.get('log'),
    clientAddress: () => clientAddress(source),
  };
}

/** The KBS dependencies of either kind of source, without building a scope. */
export function depsOf(source: ScopeSource): KbsDeps {
  return isContext(source) ? source.get('deps') : source.deps;
}

function isContext(source: ScopeSource): source is Context<KbsEnv> {
  return 'req' in source;
}
