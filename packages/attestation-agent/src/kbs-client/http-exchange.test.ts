import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { httpExchange, keepAliveAgent } from './http-exchange.js';

let server: Server;
let base: string;
const seen: string[] = [];

beforeAll(async () => {
  server = createServer((req, res) => {
    let body = '';
    req.on('data', (d: Buffer) => (body += d));
    req.on('end', () => {
      seen.push(`${req.method} ${req.url} ${req.headers['cookie'] ?? ''} ${body}`);
      if (req.url === '/redirect') {
        res.writeHead(302, { location: '/elsewhere', 'set-cookie': ['a=1', 'b=2'] });
        res.end();
      } else if (req.url === '/big') res.end('x'.repeat(10_000));
      else if (req.url === '/hang') res.writeHead(200).write('partial');
      else res.end(JSON.stringify({ echo: body }));
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(() => {
  server.closeAllConnections();
  return new Promise<void>((r) => server.close(() => r()));
});

const opts = (over: Partial<Parameters<typeof httpExchange>[1]> = {}) => ({ method: 'GET' as const, headers: {}, timeoutMs: 2000, maxBodyBytes: 1000, agent: keepAliveAgent(new URL(base)), ...over });

describe('httpExchange', () => {
  it('sends the body and headers and returns status, set-cookie lines and the body', async () => {
    const r = await httpExchange(`${base}/x`, opts({ method: 'POST', headers: { 'content-type': 'application/json', cookie: 'kbs-session-id=s' }, body: '{"a":1}' }));
    expect(r).toEqual({ statusCode: 200, setCookie: [], body: JSON.stringify({ echo: '{"a":1}' }) });
    expect(seen.at(-1)).toBe('POST /x kbs-session-id=s {"a":1}');
  });

  it('onSent: called once, when the request is written, before the answer is read', async () => {
    const order: string[] = [];
    const r = httpExchange(`${base}/x`, opts({ method: 'POST', body: '{"b":2}', onSent: () => order.push('sent') }));
    order.push('called');
    await r;
    order.push('answered');
    expect(order).toEqual(['called', 'sent', 'answered']);
  });

  it('does not follow a redirect (the session cookie would go elsewhere)', async () => {
    const r = await httpExchange(`${base}/redirect`, opts({ headers: { cookie: 'kbs-session-id=s' } }));
    expect(r.statusCode).toBe(302);
    expect(r.setCookie).toEqual(['a=1', 'b=2']);
    expect(seen.some((s) => s.startsWith('GET /elsewhere'))).toBe(false);
  });

  it('bounds the answer body and the whole exchange, and reports an unreachable KBS', async () => {
    await expect(httpExchange(`${base}/big`, opts())).rejects.toMatchObject({ code: 'KBS_PROTOCOL' });
    const t0 = Date.now();
    await expect(httpExchange(`${base}/hang`, opts({ timeoutMs: 300 }))).rejects.toMatchObject({ code: 'KBS_UNREACHABLE' });
    expect(Date.now() - t0).toBeLessThan(5000);
    await expect(httpExchange('http://127.0.0.1:1/x', opts())).rejects.toMatchObject({ code: 'KBS_UNREACHABLE' });
  });
});
