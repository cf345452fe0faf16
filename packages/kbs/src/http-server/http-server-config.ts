/**
 * The `[http_server]` section and the `--insecure-http` flag (issue 12), parsed once by config.ts:
 *   [http_server] certificate, private_key   PEM files (RSA or EC key): the KBS serves HTTPS, and
 *                                           reloads both on SIGHUP without closing its listener
 *                 insecure_http             plain HTTP, deliberately (also `--insecure-http`)
 *                 request_timeout_ms        a request (headers and body) must arrive within this
 *                 headers_timeout_ms        the request headers must arrive within this
 *                 keep_alive_timeout_ms     an idle kept-alive connection is closed after this
 *                 max_connections           open connections per process; beyond, new ones are dropped
 * Neither TLS nor insecure_http: `keyhold-kbs serve` refuses to start (exit 2) and says how to make
 * a certificate. `[admin] client_ca` (owner-config.ts) adds mutual TLS for the admin API.
 */
import { z } from 'zod';

const ms = (min: number, max: number) => z.number().int().min(min).max(max);

export const HTTP_SERVER_CONFIG_FIELDS = {
  http_server: z
    .object({
      certificate: z.string().min(1).optional(),
      private_key: z.string().min(1).optional(),
      insecure_http: z.boolean().optional(),
      request_timeout_ms: ms(1000, 600_000).optional(),
      headers_timeout_ms: ms(1000, 600_000).optional(),
      // 0 would disable node's keep-alive timeout: idle connections held forever.
      keep_alive_timeout_ms: ms(100, 600_000).optional(),
      max_connections: z.number().int().min(1).max(1_000_000).optional(),
    })
    .strict()
    .optional(),
};

export const HTTP_SERVER_DEFAULTS = {
  requestTimeoutMs: 30_000,
  headersTimeoutMs: 10_000,
  keepAliveTimeoutMs: 5_000,
  maxConnections: 10_000,
} as const;

export interface HttpServerConfig {
  /** The PEM files the KBS serves HTTPS with; undefined for plain HTTP (or when neither was chosen). */
  readonly tls: { readonly certificateFile: string; readonly privateKeyFile: string } | undefined;
  /** Plain HTTP was asked for explicitly (`insecure_http = true` or `--insecure-http`). */
  readonly insecureHttp: boolean;
  readonly requestTimeoutMs: number;
  readonly headersTimeoutMs: number;
  readonly keepAliveTimeoutMs: number;
  readonly maxConnections: number;
}

type FileFields = { readonly http_server?: z.infer<(typeof HTTP_SERVER_CONFIG_FIELDS)['http_server']> };

/** Resolve `[http_server]` and the flag; throws Error with an operator-readable message. */
export function httpServerConfigFrom(file: FileFields, flags: { insecureHttp: boolean }, rel: (p: string) => string): HttpServerConfig {
  const h = file.http_server;
  if ((h?.certificate === undefined) !== (h?.private_key === undefined)) {
    throw new Error('[http_server] certificate and private_key go together: give both (PEM files) or neither');
  }
  const insecureHttp = flags.insecureHttp || h?.insecure_http === true;
  const tls = h?.certificate !== undefined && h.private_key !== undefined ? { certificateFile: rel(h.certificate), privateKeyFile: rel(h.private_key) } : undefined;
  // SECURITY: one transport, chosen deliberately: a config that names a certificate and also asks
  // for plain HTTP is contradictory, and guessing would either drop TLS or ignore the operator.
  if (tls !== undefined && insecureHttp) {
    throw new Error('[http_server] certificate/private_key and insecure_http (or --insecure-http) contradict each other: choose HTTPS or plain HTTP');
  }
  const requestTimeoutMs = h?.request_timeout_ms ?? HTTP_SERVER_DEFAULTS.requestTimeoutMs;
  const headersTimeoutMs = h?.headers_timeout_ms ?? Math.min(HTTP_SERVER_DEFAULTS.headersTimeoutMs, requestTimeoutMs);
  // node refuses a headers timeout longer than the request timeout (the request one would never apply).
  if (headersTimeoutMs > requestTimeoutMs) {
    throw new Error(`[http_server] headers_timeout_ms (${headersTimeoutMs}) must not exceed request_timeout_ms (${requestTimeoutMs})`);
  }
  return {
    tls,
    insecureHttp,
    requestTimeoutMs,
    headersTimeoutMs,
    keepAliveTimeoutMs: h?.keep_alive_timeout_ms ?? HTTP_SERVER_DEFAULTS.keepAliveTimeoutMs,
    maxConnections: h?.max_connections ?? HTTP_SERVER_DEFAULTS.maxConnections,
  };
}

/** The refusal when neither TLS nor plain HTTP was chosen (serve exits 2 with it). */
export const NO_TRANSPORT_MESSAGE =
  'no TLS certificate configured: give [http_server] certificate and private_key (PEM) in the config file, or pass --insecure-http to serve plain HTTP deliberately';

export const NO_TRANSPORT_HINT =
  'a throwaway certificate for this host: openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 365 -subj /CN=localhost ' +
  '-addext subjectAltName=DNS:localhost,IP:127.0.0.1 -keyout kbs.key.pem -out kbs.crt.pem — then [http_server] certificate = "kbs.crt.pem", ' +
  'private_key = "kbs.key.pem", and give clients the certificate with --cert-file kbs.crt.pem';
