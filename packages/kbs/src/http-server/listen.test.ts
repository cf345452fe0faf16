// Slow clients and the connection cap against the real node server (loopback sockets): a client that
// trickles its headers or its body, one that never sends a byte, one that never finishes a TLS
// handshake — each is disconnected within the configured bound; connections beyond the cap are
// closed at once. The measured times are printed (bounds carry slack for a loaded machine).
import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { Hono } from 'hono';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HTTP_SERVER_DEFAULTS, type HttpServerConfig } from './http-server-config.js';
import { checkIntervalMs, listenKbs, type KbsListener } from './listen.js';

const app = new Hono();
app.get('/healthz', (c) => c.json({ status: 'ok' }));
app.post('/echo', async (c) => c.text(String((await c.req.text()).length)));
// A client that goes away mid-body is expected here; keep the test output quiet.
app.onError((_err, c) => c.text('aborted', 400));

const open: KbsListener[] = [];
let dir: string;
afterAll(async () => {
  for (const l of open) await l.close();
  if (dir !== undefined) await rm(dir, { recursive: true, force: true });
});
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'keyhold-listen-'));
});

async function listen(over: Partial<HttpServerConfig>): Promise<KbsListener> {
  const l = await listenKbs({ fetch: app.fetch, host: '127.0.0.1', port: 0, http: { ...HTTP_SERVER_DEFAULTS, tls: undefined, insecureHttp: true, ...over } });
  open.push(l);
  return l;
}

/** Connect, run `feed` (which writes slowly), resolve with ms until the server closed the socket. */
function closedAfter(port: number, feed: (s: Socket) => void, giveUpMs: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const s = connect(port, '127.0.0.1');
    const timers: NodeJS.Timeout[] = [];
    const done = (): void => {
      for (const t of timers) clearInterval(t);
      resolve(Math.round(performance.now() - t0));
    };
    s.on('connect', () => feed(s));
    s.on('close', done);
    s.on('error', () => undefined);
    s.on('data', () => undefined);
    timers.push(setTimeout(() => (s.destroy(), reject(new Error(`still open after ${giveUpMs} ms`))), giveUpMs));
    (s as Socket & { timers?: NodeJS.Timeout[] }).timers = timers;
  });
}

/** Write `text` one byte every `everyMs` (the timer is cleared when the socket closes). */
function trickle(s: Socket, text: string, everyMs: number): void {
  let i = 0;
  const t = setInterval(() => {
    if (s.destroyed || i >= text.length) return clearInterval(t);
    s.write(text[i++]!);
  }, everyMs);
  s.once('close', () => clearInterval(t));
}

describe('slow clients are disconnected within the configured bounds', () => {
  it('trickled headers: closed after headers_timeout_ms', async () => {
    const l = await listen({ headersTimeoutMs: 1000, requestTimeoutMs: 3000 });
    const headers = `GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ${'a'.repeat(200)}\r\n\r\n`;
    const ms = await closedAfter(l.port, (s) => trickle(s, headers, 100), 15_000);
    process.stdout.write(`trickled headers: closed after ${ms} ms (headers_timeout_ms 1000, check every ${checkIntervalMs({ ...HTTP_SERVER_DEFAULTS, tls: undefined, insecureHttp: true, headersTimeoutMs: 1000 })} ms)\n`);
    expect(ms).toBeGreaterThanOrEqual(900);
    expect(ms).toBeLessThan(1000 + 4000);
  });

  it('trickled body: closed after request_timeout_ms', async () => {
    const l = await listen({ headersTimeoutMs: 1000, requestTimeoutMs: 2000 });
    const ms = await closedAfter(
      l.port,
      (s) => {
        s.write('POST /echo HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\nContent-Length: 100000\r\n\r\n');
        trickle(s, 'b'.repeat(100_000), 50);
      },
      15_000,
    );
    process.stdout.write(`trickled body: closed after ${ms} ms (request_timeout_ms 2000)\n`);
    expect(ms).toBeGreaterThanOrEqual(1900);
    expect(ms).toBeLessThan(2000 + 4000);
  });

  it('a connection that never sends a byte: closed after headers_timeout_ms', async () => {
    const l = await listen({ headersTimeoutMs: 1000, requestTimeoutMs: 3000 });
    const ms = await closedAfter(l.port, () => undefined, 15_000);
    process.stdout.write(`silent connection: closed after ${ms} ms\n`);
    expect(ms).toBeLessThan(1000 + 4000);
  });

  it('an honest request on a kept-alive connection still works, and idles out after keep_alive_timeout_ms', async () => {
    const l = await listen({ headersTimeoutMs: 1000, requestTimeoutMs: 3000, keepAliveTimeoutMs: 1000 });
    let got = '';
    const ms = await closedAfter(
      l.port,
      (s) => {
        s.on('data', (b: Buffer) => (got += b.toString()));
        s.write('GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n');
      },
      15_000,
    );
    expect(got).toMatch(/^HTTP\/1\.1 200 OK/);
    expect(got).toContain('{"status":"ok"}');
    expect(ms).toBeLessThan(1000 + 4000);
  });

  it('a TLS client that never finishes its handshake: closed after headers_timeout_ms', async () => {
    const run = promisify(execFile);
    const cert = join(dir, 'c.pem');
    const key = join(dir, 'k.pem');
    await run('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '1', '-subj', '/CN=localhost', '-keyout', key, '-out', cert]);
    const l = await listen({ tls: { certificateFile: cert, privateKeyFile: key }, insecureHttp: false, headersTimeoutMs: 1000, requestTimeoutMs: 3000 });
    expect(l.url).toMatch(/^https:/);
    // A ClientHello's first bytes, then nothing.
    const ms = await closedAfter(l.port, (s) => s.write(Buffer.from([0x16, 0x03, 0x01, 0x00])), 15_000);
    process.stdout.write(`stalled TLS handshake: closed after ${ms} ms\n`);
    expect(ms).toBeLessThan(1000 + 4000);
  });
});

describe('connection cap', () => {
  it('closes connections beyond max_connections at once; those within it are served', async () => {
    const l = await listen({ maxConnections: 3 });
    const sockets: Socket[] = [];
    const opened = (): Promise<Socket> =>
      new Promise((resolve) => {
        const s = connect(l.port, '127.0.0.1', () => resolve(s));
        s.on('error', () => undefined);
        sockets.push(s);
      });
    for (let i = 0; i < 3; i++) await opened();
    // Give the server a moment to count them.
    await new Promise((r) => setTimeout(r, 100));
    const over = await closedAfter(l.port, () => undefined, 5000);
    process.stdout.write(`connection 4 of max 3: closed after ${over} ms\n`);
    expect(over).toBeLessThan(1000);
    // The three within the cap still get answers.
    const answer = await new Promise<string>((resolve) => {
      let got = '';
      sockets[0]!.on('data', (b: Buffer) => {
        got += b.toString();
        if (got.includes('"ok"')) resolve(got);
      });
      sockets[0]!.write('GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n');
    });
    expect(answer).toMatch(/^HTTP\/1\.1 200/);
    for (const s of sockets) s.destroy();
  });
});
