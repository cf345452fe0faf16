import { IncomingMessage, request } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Socket } from 'node:net';
import { serve } from '@hono/node-server';
import { Hono, type Context } from 'hono';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KbsError } from '../errors.js';
import { readJsonRequest } from './read-body.js';

/** A real node request carrying `chunks`, as the node server hands it over (not yet read). */
function incoming(headers: Record<string, string>, chunks: Array<Buffer | string>, end = true): IncomingMessage {
  const m = new IncomingMessage(new Socket());
  m.headers = headers;
  for (const c of chunks) m.push(Buffer.from(c));
  if (end) m.push(null);
  return m;
}

/** A context whose web request must never be touched: the node path alone serves it. */
function nodeContext(m: IncomingMessage, outgoing?: { setHeader(name: string, value: string): void }): Context {
  const fail = () => {
    throw new Error('the web Request was built');
  };
  return { env: { incoming: m, outgoing }, req: { get raw() { return fail(); }, header: fail } } as unknown as Context;
}

const json = { 'content-type': 'application/json' };

describe('readJsonRequest on node’s request stream', () => {
  it('parses JSON from several chunks without building a web Request', async () => {
    await expect(readJsonRequest(nodeContext(incoming(json, ['{"a":', '[1,2', ']}'])), 100)).resolves.toEqual({ a: [1, 2] });
    await expect(readJsonRequest(nodeContext(incoming({ 'content-type': 'application/vnd.x+json; charset=utf-8' }, ['"é"'])), 100)).resolves.toBe('é');
  });

  it('refuses a body that is not declared JSON, before reading it (415)', async () => {
    for (const headers of [{} as Record<string, string>, { 'content-type': 'text/plain' }, { 'content-type': 'application/jsonp' }, { 'content-type': 'multipart/form-data' }]) {
      await expect(readJsonRequest(nodeContext(incoming(headers, ['{}'])), 100)).rejects.toMatchObject({ code: 'UNSUPPORTED_MEDIA_TYPE' });
    }
  });

  it('refuses a declared length over the cap without reading (413)', async () => {
    const m = incoming({ ...json, 'content-length': '101' }, ['{}'], false);
    await expect(readJsonRequest(nodeContext(m), 100)).rejects.toMatchObject({ code: 'PAYLOAD_TOO_LARGE' });
    expect(m.readableDidRead).toBe(false);
  });

  it('stops buffering a chunked body at the cap (413) and asks for the connection to close', async () => {
    const headers: Array<[string, string]> = [];
    const m = incoming(json, ['[', '0,'.repeat(40), '0,'.repeat(40)], false);
    await expect(readJsonRequest(nodeContext(m, { setHeader: (k, v) => headers.push([k, v]) }), 100)).rejects.toMatchObject({ code: 'PAYLOAD_TOO_LARGE' });
    expect(headers).toEqual([['connection', 'close']]);
    // Exactly at the cap is accepted.
    await expect(readJsonRequest(nodeContext(incoming(json, [`"${'x'.repeat(98)}"`])), 100)).resolves.toHaveLength(98);
  });

  it('answers 400 for malformed JSON and for an empty body', async () => {
    await expect(readJsonRequest(nodeContext(incoming(json, ['{"a":'])), 100)).rejects.toMatchObject({ code: 'BAD_REQUEST' });
    await expect(readJsonRequest(nodeContext(incoming(json, [])), 100)).rejects.toMatchObject({ code: 'BAD_REQUEST' });
  });

  it('does not hang when the client goes away mid-body', async () => {
    const m = incoming(json, ['{"a":'], false);
    const p = readJsonRequest(nodeContext(m), 100);
    setImmediate(() => m.destroy());
    await expect(p).rejects.toMatchObject({ code: 'BAD_REQUEST' });
  });
});

describe('readJsonRequest through @hono/node-server and in process', () => {
  const app = new Hono();
  const read = async (c: Context) => {
    try {
      return c.json({ got: await readJsonRequest(c, 64) });
    } catch (err) {
      if (err instanceof KbsError) return c.json({ code: err.code }, 400);
      throw err;
    }
  };
  app.post('/read', read);
  // What hono's bodyLimit does for a chunked body: wrap the web body, attaching to the node stream.
  app.post('/touched', (c) => {
    void c.req.raw.body;
    return read(c);
  });
  let server: ReturnType<typeof serve>;
  let port = 0;
  beforeAll(async () => {
    server = serve({ fetch: app.fetch, hostname: '127.0.0.1', port: 0 });
    await new Promise<void>((r) => server.once('listening', r));
    port = (server.address() as AddressInfo).port;
  });
  afterAll(() => new Promise<void>((r) => server.close(() => r())));

  function post(path: string, body: string[], headers: Record<string, string>): Promise<{ status: number; body: string; connection: string | undefined }> {
    return new Promise((resolve, reject) => {
      const req = request({ host: '127.0.0.1', port, path, method: 'POST', headers }, (res) => {
        let text = '';
        res.on('data', (d: Buffer) => (text += d));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text, connection: res.headers.connection }));
      });
      req.on('error', reject);
      for (const b of body) req.write(b);
      req.end();
    });
  }

  it('reads a content-length body and a chunked body from the node stream', async () => {
    expect(JSON.parse((await post('/read', ['{"a":1}'], { ...json, 'content-length': '7' })).body)).toEqual({ got: { a: 1 } });
    expect(JSON.parse((await post('/read', ['{"a":', '2}'], json)).body)).toEqual({ got: { a: 2 } });
    expect(JSON.parse((await post('/touched', ['{"a":3}'], json)).body)).toEqual({ got: { a: 3 } });
  });

  it('caps chunked bodies over the wire and closes the connection after the answer', async () => {
    const r = await post('/read', ['[', '1,'.repeat(40), '1]'], json);
    expect(JSON.parse(r.body)).toEqual({ code: 'PAYLOAD_TOO_LARGE' });
    expect(r.connection).toBe('close');
    expect(JSON.parse((await post('/touched', ['[', '1,'.repeat(40), '1]'], json)).body)).toEqual({ code: 'PAYLOAD_TOO_LARGE' });
    expect(JSON.parse((await post('/read', ['{}'], { 'content-type': 'text/plain' })).body)).toEqual({ code: 'UNSUPPORTED_MEDIA_TYPE' });
  });

  it('without a node request (app.request), applies the same checks to the web body', async () => {
    const call = async (body: string, ct = 'application/json') => (await (await app.request('/read', { method: 'POST', body, headers: { 'content-type': ct } })).json()) as unknown;
    expect(await call('{"a":1}')).toEqual({ got: { a: 1 } });
    expect(await call(`"${'x'.repeat(80)}"`)).toEqual({ code: 'PAYLOAD_TOO_LARGE' });
    expect(await call('{"a":')).toEqual({ code: 'BAD_REQUEST' });
    expect(await call('{}', 'text/plain')).toEqual({ code: 'UNSUPPORTED_MEDIA_TYPE' });
    const stream = new ReadableStream<Uint8Array>({
      start(c) {
        for (let i = 0; i < 10; i++) c.enqueue(new TextEncoder().encode('1234567890'));
        c.close();
      },
    });
    const res = await app.request('/read', { method: 'POST', body: stream, headers: { 'content-type': 'application/json' }, duplex: 'half' } as RequestInit);
    expect(await res.json()).toEqual({ code: 'PAYLOAD_TOO_LARGE' });
  });
});
