import type { RequestScope } from '../request-scope.js';

/**
 * One request of the attestation flow (`POST /kbs/v0/auth`, `POST /kbs/v0/attest`,
 * `GET /kbs/v0/resource/...`) as its handler sees it. The handlers are plain functions from an
 * exchange to an answer, independent of the HTTP framework; flow-on-hono.ts serves them as Hono
 * routes (reading headers, cookies and bodies from node's own request where there is one).
 */
export interface FlowExchange extends RequestScope {
  /** Whether the request came over TLS (session cookies are then `Secure`). */
  readonly secure: boolean;
  /** One request header by its lower-case name, repeated values joined as the Fetch `Headers` do. */
  header(name: string): string | undefined;
  /** One cookie's value. */
  cookie(name: string): string | undefined;
  /**
   * The request body as JSON: declared `application/json` (else 415), at most `maxBytes` (else
   * 413, checked as bytes arrive), well-formed (else 400). Not validated: the caller validates.
   */
  readJson(maxBytes: number): Promise<unknown>;
}

/** `GET /kbs/v0/resource/<repository>/<type>/<tag>[?query]`: the route's parameters, decoded. */
export interface ResourceExchange extends FlowExchange {
  /** `<repository>/<type>/<tag>` as the route matched it (not yet validated). */
  readonly resourcePath: string;
  /** Query parameters, first value of each name. */
  readonly query: Readonly<Record<string, string>>;
}

/** A successful answer (200, JSON); failures are thrown as KbsErrors. */
export interface FlowAnswer {
  readonly body: unknown;
  /** A `Set-Cookie` header value (the session cookie of `/auth`). */
  readonly setCookie?: string;
}
