// The client against real servers on unix sockets: node:http (as the daemon answers) and a raw
// node:net server sending the hostile or broken answers the client must refuse.
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer as createHttpServer, type RequestListener } from 'node:http';
import { createServer as createNetServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { fetchFromResourceSocket } from './client.js';
import { socketFailure } from './stand-in-socket.test-support.js';

const dir = await mkdtemp(join(tmpdir(), 'kh-rsc-'));
afterAll(() => rm(dir, { recursive: true, force: true }));
let n = 0;
let servers: Server[] = [];
const open = new Set<Socket>();
afterEach(async () => {
  for (const s of open) s.destroy();
  open.clear();
  await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
  servers = [];
});

async function listen(server: Server): Promise<string> {
  const path = join(dir, `s${n++}.sock`);
  servers.push(server);
  server.on('connection', (s: Socket) => {
    open.add(s);
    s.on('close', () => open.delete(s));
  });
  await new Promise<void>((r) => server.listen(path, r));
  return path;
}
const http = (handler: RequestListener) => listen(createHttpServer(handler));
/** A server that writes `answer` (then ends, unless `hold`) to each connection once it has read the request head. */
const raw = (answer: string | Buffer, hold = false) =>
  listen(
    createNetServer((s: Socket) => {
      let got = '';
      s.on('data', (d) => {
        got += d.toString('latin1');
        if (!got.includes('\r\n\r\n')) return;
        if (hold) s.write(answer);
        else s.end(answer);
      });
      s.on('error', () => undefined);
    }),
  );

const R = { repository: 'default', type: 'key', tag: 'k1' };

describe('resource socket client', () => {
  it('sends GET /cdh/resource/... and returns the body of a 200', async () => {
    const seen: string[] = [];
    const secret = Buffer.from([0, 1, 2, 255, 13, 10, 13, 10, 7]);
    const path = await http((req, res) => {
      seen.push(`${req.method} ${req.url}`);
      res.writeHead(200, { 'content-length': secret.length }).end(secret);
    });
    expect(await fetchFromResourceSocket(path, R)).toEqual(secret);
    expect(await fetchFromResourceSocket(path, { ...R, version: 4 })).toEqual(secret);
    expect(seen).toEqual(['GET /cdh/resource/default/key/k1', 'GET /cdh/resource/default/key/k1?version=4']);
  });

  it('reports the agent error code and the exit code of an error answer', async () => {
    const path = await http((_req, res) => {
      const body = JSON.stringify({ type: 'https://keyhold.dev/agent/errors/RESOURCE_NOT_FOUND', detail: 'no such resource' });
      res.writeHead(404, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) }).end(body);
    });
    const err = await socketFailure(fetchFromResourceSocket(path, R));
    expect(err.code).toBe('RESOURCE_NOT_FOUND');
    expect(err.message).toBe('RESOURCE_NOT_FOUND: no such resource');
    expect(err.exitCode).toBe(4);
    expect(err.status).toBe(404);
  });

  it('treats a foreign error type as AGENT_REFUSED and strips control characters from the detail', async () => {
    // SECURITY: a detail read from the socket cannot write terminal escape sequences to the user's stderr.
    const body = JSON.stringify({ type: 'https://example.org/errors/evil', detail: 'denied \u001b[2J\u001b]0;pwned\u0007 now' });
    const path = await raw(`HTTP/1.1 403 Forbidden\r\ncontent-length: ${Buffer.byteLength(body)}\r\n\r\n${body}`);
    const err = await socketFailure(fetchFromResourceSocket(path, R));
    expect(err.code).toBe('AGENT_REFUSED');
    expect(err.exitCode).toBe(3);
    expect(err.message).not.toMatch(/[\u0000-\u001f]/);
    expect(err.message).toContain('denied ?[2J?]0;pwned? now');
  });

  it('says AGENT_UNREACHABLE with a hint when nothing serves the socket', async () => {
    const err = await socketFailure(fetchFromResourceSocket(join(dir, 'absent.sock'), R));
    expect(err.code).toBe('AGENT_UNREACHABLE');
    expect(err.message).toMatch(/no keyhold-agent run is serving it \(ENOENT\)/);
    expect(err.hint).toMatch(/keyhold-agent run --resource-socket/);
    expect(err.exitCode).toBe(1);
  });

  it('refuses a cut-off body instead of returning a shorter secret', async () => {
    // SECURITY: a cut-off answer is an error, never a shorter secret.
    const path = await raw('HTTP/1.1 200 OK\r\ncontent-length: 32\r\n\r\nonly-sixteen-byt');
    const err = await socketFailure(fetchFromResourceSocket(path, R));
    expect(err.code).toBe('AGENT_PROTOCOL');
    expect(err.message).toMatch(/cut off: 16 of 32 bytes/);
  });

  it('refuses answers framed any other way than one Content-Length', async () => {
    // SECURITY: only a single plain Content-Length frames the body; chunking or a second, different length (response smuggling) is refused.
    const cases: [string, RegExp][] = [
      ['HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n4\r\nabcd\r\n0\r\n\r\n', /chunked/],
      ['HTTP/1.1 200 OK\r\ncontent-length: 4\r\ncontent-length: 5\r\n\r\nabcd', /bad Content-Length/],
      ['HTTP/1.1 200 OK\r\ncontent-length: -1\r\n\r\n', /bad Content-Length/],
      ['HTTP/1.1 200 OK\r\n\r\nabcd', /no Content-Length/],
      ['HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nabcd', /longer than its Content-Length/],
      ['SSH-2.0-OpenSSH_9.2\r\n\r\n', /not an HTTP\/1.1 answer/],
      ['HTTP/1.1 200 OK\r\nno-colon-here\r\n\r\n', /malformed header/],
      ['', /closed before an answer/],
    ];
    for (const [answer, why] of cases) {
      const err = await socketFailure(fetchFromResourceSocket(await raw(answer), R));
      expect(err.code, answer).toBe('AGENT_PROTOCOL');
      expect(err.message, answer).toMatch(why);
    }
  });

  it('bounds what it reads: an endless head, an announced body over the cap', async () => {
    // SECURITY: the head is bounded, so a peer that never ends its headers cannot grow this process's memory.
    const endless = await raw(`HTTP/1.1 200 OK\r\nx: ${'a'.repeat(64 * 1024)}`, true);
    expect((await socketFailure(fetchFromResourceSocket(endless, R))).message).toMatch(/head too large/);
    // SECURITY: the body is bounded before it is read: an announced length over the cap is refused, not buffered.
    const huge = await raw('HTTP/1.1 200 OK\r\ncontent-length: 9999999999\r\n\r\n', true);
    expect((await socketFailure(fetchFromResourceSocket(huge, R))).message).toMatch(/exceeds/);
    const hugeError = await raw('HTTP/1.1 500 Oops\r\ncontent-length: 100000\r\n\r\n', true);
    expect((await socketFailure(fetchFromResourceSocket(hugeError, R))).message).toMatch(/exceeds 16384/);
  });

  it('gives up on a silent peer at its deadline', async () => {
    const silent = await listen(createNetServer(() => undefined));
    const err = await socketFailure(fetchFromResourceSocket(silent, R, { timeoutMs: 200 }));
    expect(err.code).toBe('AGENT_UNREACHABLE');
    expect(err.message).toMatch(/no answer .* within 200 ms/);
  });
});
