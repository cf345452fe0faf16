/**
 * The three flow routes skip Hono's requestId/secureHeaders/bodyLimit middleware (hot-routes.ts):
 * their responses must carry exactly the headers Hono's middleware gives every other route, and
 * their bodies must still be capped — over a real @hono/node-server socket (the production path,
 * headers written onto node's response) and in process (`app.request()`, the fallback).
 */
import { generateKeyPairSync } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { serve, type ServerType } from '@hono/node-server';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sendHttp, type HttpAnswer, type SendOptions } from './http-send.test-support.js';
import type { KbsDeps } from '../app-env.js';
import { createApp } from '../app.js';
import { defaultAttestationPolicy } from '../attestation/attestation-policy.js';
import { affirmingResourcePolicy } from '../release/resource-policy.js';
import { openMemoryState } from '../state/index.js';
import type { KbsState } from '../state/ports.js';
import { EarSigner } from '../token/ear-signer.js';
import { SECURITY_HEADERS } from './hot-routes.js';

const MAX_BODY = 4096;
let state: KbsState;
let deps: KbsDeps;
let server: ServerType;
let port: number;

beforeAll(async () => {
  state = await openMemoryState({ sessionLimits: { maxSessions: 100, maxSessionBytes: 1 << 20 } });
  deps = {
    state,
    sessionTtlMs: 60_000,
    signer: await EarSigner.create({ privateKey: generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey, issuer: 'test', lifetimeMs: 60_000 }),
    appraisers: new Map(),
    attestationPolicy: defaultAttestationPolicy,
    resourcePolicy: affirmingResourcePolicy,
    resources: { get: async () => undefined, put: async () => ({ version: 1 }), delete: async () => false, generate: async () => ({ version: 1 }), rotate: async () => ({ version: 1 }) },
    adminAuth: { authorize: async () => ({ name: 'test', role: 'admin' }) } as unknown as KbsDeps['adminAuth'],
    logger: pino({ level: 'silent' }),
    maxBodyBytes: MAX_BODY,
    build: 'test',
  };
  const app = createApp(deps);
  server = await new Promise<ServerType>((resolve) => {
    const s = serve({ fetch: app.fetch, hostname: '127.0.0.1', port: 0 }, () => resolve(s));
  });
  port = (server.address() as AddressInfo).port;
});

afterAll(async () => {
  await new Promise<void>((resolve) => server?.close(() => resolve()));
  await state?.close();
});

type Answer = HttpAnswer;

/** One request over a real socket; `chunked` sends the body without a content-length. */
function send(method: string, path: string, opts: SendOptions = {}): Promise<Answer> {
  return sendHttp(port, method, path, opts);
}

const securityHeadersOf = (h: Record<string, string | string[] | undefined>): Record<string, unknown> =>
  Object.fromEntries(SECURITY_HEADERS.map(([name]) => [name.toLowerCase(), h[name.toLowerCase()]]));

const JSON_HEADERS = { 'content-type': 'application/json' };
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

describe('hot routes over node-server', () => {
  it('answer with the same security headers as a route served by Hono’s secureHeaders(), and a request id', async () => {
    const reference = await send('GET', '/healthz');
    expect(reference.status).toBe(200);
    const expected = securityHeadersOf(reference.headers);
    // Hono's defaults are what SECURITY_HEADERS lists: if Hono changes them, this fails.
    expect(Object.values(expected).every((v) => typeof v === 'string')).toBe(true);
    expect(Object.keys(reference.headers).filter((k) => /^(cross-origin|origin-agent|referrer|strict-transport|x-)/.test(k) && k !== 'x-request-id').sort()).toEqual(Object.keys(expected).sort());
    const answers = [
      await send('POST', '/kbs/v0/auth', { body: JSON.stringify({ version: '0.4.0', tee: 'tpm' }), headers: JSON_HEADERS }),
      await send('POST', '/kbs/v0/attest', { body: '{}', headers: JSON_HEADERS }),
      await send('GET', '/kbs/v0/resource/default/key/a'),
      await send('GET', '/kbs/v0/resource/default/key/a', { headers: { authorization: 'Bearer not.a.token' } }),
    ];
    expect(answers.map((a) => a.status)).toEqual([400, 401, 401, 401]);
    for (const a of answers) {
      expect(securityHeadersOf(a.headers)).toEqual(expected);
      expect(a.headers['x-request-id']).toMatch(UUID);
      expect(a.headers['content-type']).toMatch(/^application\/json/);
      expect(JSON.parse(a.body)).toHaveProperty('type');
    }
  });

  it('echo a well-formed client request id and replace a hostile one, as Hono’s requestId() does', async () => {
    const ok = await send('GET', '/kbs/v0/resource/default/key/a', { headers: { 'x-request-id': 'trace-42_A=' } });
    expect(ok.headers['x-request-id']).toBe('trace-42_A=');
    for (const bad of ['has space', 'a'.repeat(256), 'semi;colon', '']) {
      const r = await send('GET', '/kbs/v0/resource/default/key/a', { headers: { 'x-request-id': bad } });
      expect(r.headers['x-request-id']).toMatch(UUID);
    }
  });

  it('cap POST bodies without Hono’s bodyLimit: declared too large, and chunked too large, answer 413', async () => {
    const big = JSON.stringify({ version: '0.4.0', tee: 'tpm', pad: 'x'.repeat(MAX_BODY) });
    for (const path of ['/kbs/v0/auth', '/kbs/v0/attest']) {
      const declared = await send('POST', path, { body: big, headers: { ...JSON_HEADERS, cookie: `kbs-session-id=${'0'.repeat(32)}` } });
      expect(declared.status).toBe(413);
      const chunked = await send('POST', path, { body: big, headers: { ...JSON_HEADERS, cookie: `kbs-session-id=${'0'.repeat(32)}` }, chunked: true });
      expect(chunked.status).toBe(413);
      expect(securityHeadersOf(chunked.headers)).toEqual(securityHeadersOf((await send('GET', '/healthz')).headers));
    }
  });

  it('still refuse a non-JSON body (415) on the hot POST routes', async () => {
    const r = await send('POST', '/kbs/v0/auth', { body: 'version=0.4.0', headers: { 'content-type': 'application/x-www-form-urlencoded' } });
    expect(r.status).toBe(415);
  });
});

describe('hot routes in process (app.request, no node response)', () => {
  it('carry the same security headers and a request id through c.header()', async () => {
    const app = createApp(deps);
    const reference = await app.request('/healthz');
    const expected = Object.fromEntries(SECURITY_HEADERS.map(([name]) => [name.toLowerCase(), reference.headers.get(name)]));
    const r = await app.request('/kbs/v0/resource/default/key/a');
    expect(r.status).toBe(401);
    expect(Object.fromEntries(SECURITY_HEADERS.map(([name]) => [name.toLowerCase(), r.headers.get(name)]))).toEqual(expected);
    expect(r.headers.get('x-request-id')).toMatch(UUID);
    const big = await app.request('/kbs/v0/auth', { method: 'POST', headers: JSON_HEADERS, body: JSON.stringify({ pad: 'x'.repeat(MAX_BODY) }) });
    expect(big.status).toBe(413);
  });
});
