/**
 * `run --health-listen HOST:PORT`: a local HTTP endpoint saying whether the node is attested now.
 * `GET /health` (or `/`) answers 200 with the status JSON while the node holds an unexpired token
 * from a successful attestation, 503 with the same JSON otherwise (refused, banned, unreachable KBS
 * after the token expired, starting, stopping). It serves the status only: never a token, a secret
 * or a key. Loopback addresses only (the status names the node and why it failed).
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { statusAt, type AttestationStatus } from './attestation-status.js';

export interface HealthServer {
  /** `http://HOST:PORT/health`. */
  readonly url: string;
  close(): Promise<void>;
}

export interface ListenAddress {
  readonly host: string;
  readonly port: number;
}

const LOOPBACK = new Set(['127.0.0.1', '::1', 'localhost']);

/** Parse `HOST:PORT` / `[::1]:PORT`; undefined when it is not a loopback address with a port 0..65535. */
export function parseHealthListen(text: string): ListenAddress | undefined {
  const m = /^(?:\[([^\]]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(text);
  if (m === null) return undefined;
  const host = (m[1] ?? m[2] ?? '').toLowerCase();
  const port = Number(m[3]);
  // SECURITY: the status names the node and why its attestation failed; it is served on loopback only.
  if (!LOOPBACK.has(host) || port > 65535) return undefined;
  return { host, port };
}

export async function startHealthServer(at: ListenAddress, current: () => AttestationStatus, now: () => number = Date.now): Promise<HealthServer> {
  const server: Server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (path !== '/health' && path !== '/') {
      res.writeHead(404, { 'content-type': 'application/json' }).end('{"error":"not found"}\n');
      return;
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD', 'content-type': 'application/json' }).end('{"error":"method not allowed"}\n');
      return;
    }
    const status = statusAt(current(), now());
    const body = `${JSON.stringify(status)}\n`;
    res.writeHead(status.attested ? 200 : 503, { 'content-type': 'application/json', 'cache-control': 'no-store' });
    res.end(req.method === 'HEAD' ? undefined : body);
  });
  server.headersTimeout = 5000;
  server.requestTimeout = 5000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(at.port, at.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const addr = server.address() as AddressInfo;
  const host = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address;
  return {
    url: `http://${host}:${addr.port}/health`,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
