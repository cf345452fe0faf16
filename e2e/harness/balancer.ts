import { createServer, request as httpRequest, Agent, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

/**
 * A tiny per-request round-robin HTTP balancer, written for the replica tests: every request goes
 * to the next backend in turn (no stickiness, no cookie affinity), so one client's auth, attest and
 * resource land on different KBS processes. Like a real balancer it takes a backend out of the
 * rotation when a connection to it is refused and retries that request (nothing was delivered); a
 * request already sent to a backend that dies fails with 502. The answer carries the index of the
 * backend that served it in `x-kh-backend`.
 */
export interface Balancer {
  readonly url: string;
  /** Requests served per backend index. */
  readonly served: number[];
  /** Backends currently taken out of the rotation. */
  readonly down: ReadonlySet<number>;
  /** Put a backend back into the rotation (after restarting it). */
  markUp(index: number): void;
  close(): Promise<void>;
}

const MAX_BODY_BYTES = 8 * 1024 * 1024;

export async function startBalancer(backends: readonly string[]): Promise<Balancer> {
  if (backends.length === 0) throw new TypeError('no backends');
  const targets = backends.map((b) => new URL(b));
  const agent = new Agent({ keepAlive: true, maxSockets: 64 });
  const served = targets.map(() => 0);
  const down = new Set<number>();
  let next = 0;

  const pick = (): number | undefined => {
    for (let i = 0; i < targets.length; i++) {
      const k = next++ % targets.length;
      if (!down.has(k)) return k;
    }
    return undefined;
  };

  const forward = (k: number, req: IncomingMessage, body: Buffer, res: ServerResponse, attempt: number): void => {
    const t = targets[k]!;
    const headers = { ...req.headers, host: t.host, 'content-length': String(body.length) };
    delete headers['transfer-encoding'];
    delete headers['connection'];
    const up = httpRequest({ host: t.hostname, port: t.port, method: req.method, path: req.url, headers, agent }, (answer) => {
      served[k]!++;
      const out: Record<string, string | string[]> = {};
      for (const [name, value] of Object.entries(answer.headers)) if (value !== undefined && name !== 'connection' && name !== 'keep-alive') out[name] = value;
      out['x-kh-backend'] = String(k);
      res.writeHead(answer.statusCode ?? 502, out);
      answer.pipe(res);
      answer.on('error', () => res.destroy());
    });
    up.on('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'ECONNREFUSED' && attempt < targets.length) {
        // Nothing reached the backend: take it out of the rotation and try the next one.
        down.add(k);
        const other = pick();
        if (other !== undefined) return forward(other, req, body, res, attempt + 1);
      }
      if (!res.headersSent) {
        res.writeHead(502, { 'content-type': 'application/json', 'x-kh-backend': String(k) });
        res.end(JSON.stringify({ type: 'balancer', detail: `backend ${k}: ${err.code ?? err.message}` }));
      } else res.destroy();
    });
    up.end(body);
  };

  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > MAX_BODY_BYTES) req.destroy();
      else chunks.push(c);
    });
    req.on('end', () => {
      const k = pick();
      if (k === undefined) {
        res.writeHead(503, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ type: 'balancer', detail: 'no backend up' }));
        return;
      }
      forward(k, req, Buffer.concat(chunks), res, 1);
    });
  });
  server.keepAliveTimeout = 30_000;
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    served,
    down,
    markUp: (i) => void down.delete(i),
    async close() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      agent.destroy();
    },
  };
}
