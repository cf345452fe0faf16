/**
 * The KBS's node server: HTTPS with the configured certificate (or plain HTTP when the operator
 * chose it), node's slow-client timeouts set from `[http_server]`, a cap on open connections, and
 * a TLS reload that swaps the certificate for new connections without closing the listener.
 *
 * Guarantees:
 * - a client that trickles its headers is disconnected once `headers_timeout_ms` passed, one that
 *   trickles its body once `request_timeout_ms` passed (checked every `checkIntervalMs`, at most 1 s);
 *   a TLS handshake must complete within `headers_timeout_ms`; an idle kept-alive connection is
 *   closed after `keep_alive_timeout_ms`;
 * - beyond `max_connections` open connections, new ones are closed at once (per process);
 * - with `[admin] client_ca`, every TLS handshake asks for a client certificate but none is required:
 *   whether it verified is decided per request by the admin middleware (attestation routes stay
 *   server-TLS only);
 * - a reload reads and checks the files first; if they are bad, the running material stays.
 */
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
import { createServer as createHttpServer, type RequestListener, type Server as HttpServer } from 'node:http';
import { getRequestListener } from '@hono/node-server';
import type { HttpServerConfig } from './http-server-config.js';
import { loadTlsMaterial, type TlsMaterial } from './tls-material.js';

type Fetch = Parameters<typeof getRequestListener>[0];

export interface KbsListener {
  readonly url: string;
  readonly port: number;
  readonly server: HttpServer | HttpsServer;
  /** What TLS material is in use (undefined for plain HTTP). */
  readonly tls: TlsMaterial['summary'] | undefined;
  /**
   * Read the TLS files again and use them for new connections; resolves with the new material's
   * summary, rejects (TlsMaterialError) and keeps the old one when they do not check out.
   * Plain HTTP: resolves undefined.
   */
  reloadTls(): Promise<TlsMaterial['summary'] | undefined>;
  close(): Promise<void>;
}

export interface ListenOptions {
  readonly fetch: Fetch;
  readonly host: string;
  readonly port: number;
  readonly http: HttpServerConfig;
  /** `[admin] client_ca`: mutual TLS for the admin API (needs TLS). */
  readonly clientCaFile?: string | undefined;
}

/** How often node looks for requests past their headers / request timeout (node's default is 30 s). */
export function checkIntervalMs(http: HttpServerConfig): number {
  return Math.max(100, Math.min(1000, Math.floor(http.headersTimeoutMs / 4)));
}

export async function listenKbs(opts: ListenOptions): Promise<KbsListener> {
  const { http } = opts;
  const files = http.tls !== undefined ? { ...http.tls, clientCaFile: opts.clientCaFile } : undefined;
  if (files === undefined && opts.clientCaFile !== undefined) throw new TypeError('[admin] client_ca needs TLS ([http_server] certificate and private_key)');
  let material = files !== undefined ? await loadTlsMaterial(files) : undefined;
  const timeouts = {
    requestTimeout: http.requestTimeoutMs,
    headersTimeout: http.headersTimeoutMs,
    keepAliveTimeout: http.keepAliveTimeoutMs,
    connectionsCheckingInterval: checkIntervalMs(http),
  };
  const listener = getRequestListener(opts.fetch, { hostname: opts.host }) as RequestListener;
  const server =
    material !== undefined
      ? createHttpsServer(
          {
            ...timeouts,
            ...secureOptions(material),
            minVersion: 'TLSv1.2',
            // SECURITY: a client that opens TLS and never finishes the handshake is dropped (slowloris on TLS).
            handshakeTimeout: http.headersTimeoutMs,
          },
          listener,
        )
      : createHttpServer(timeouts, listener);
  // SECURITY: a bounded number of open sockets per process (file descriptor and memory exhaustion).
  server.maxConnections = http.maxConnections;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port, opts.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const addr = server.address();
  const port = typeof addr === 'object' && addr !== null ? addr.port : opts.port;
  const host = opts.host.includes(':') ? `[${opts.host}]` : opts.host;
  const url = `${material !== undefined ? 'https' : 'http'}://${host}:${port}`;
  return {
    url,
    port,
    server,
    get tls() {
      return material?.summary;
    },
    async reloadTls() {
      if (files === undefined) return undefined;
      const next = await loadTlsMaterial(files);
      (server as HttpsServer).setSecureContext(secureOptions(next));
      material = next;
      return next.summary;
    },
    close() {
      return new Promise<void>((resolve) => {
        server.close(() => resolve());
        // Idle kept-alive connections would hold close() open until their timeout.
        server.closeIdleConnections();
      });
    },
  };
}

function secureOptions(m: TlsMaterial): { key: string; cert: string; ca?: string; requestCert: boolean; rejectUnauthorized: boolean } {
  return m.ca !== undefined
    ? // Ask for a client certificate on every handshake, verify it against the client CA, and let the
      // admin middleware refuse admin calls whose certificate did not verify (or was not sent).
      { key: m.key, cert: m.cert, ca: m.ca, requestCert: true, rejectUnauthorized: false }
    : { key: m.key, cert: m.cert, requestCert: false, rejectUnauthorized: false };
}
