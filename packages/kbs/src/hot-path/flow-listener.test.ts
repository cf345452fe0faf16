/**
 * Node serves the attestation flow's routes without Hono (flow-listener.ts). Two real servers share
 * one set of dependencies: `hono` (listenKbs without flowDeps: every request through Hono, as before
 * issue 11's last step) and `node` (the production listener). The same requests must get the same
 * answers from both — statuses, Trustee error bodies, headers, cookies, the `/auth` rate limit,
 * audit records, metrics labels — and a whole auth → attest → resource flow must work on each.
 *
 * The TEE here is a stand-in appraiser ('tpm' that accepts evidence "good" and refuses anything
 * else): what is under test is the HTTP layer; real TPM appraisal runs through this same listener in
 * the e2e suite (swtpm, the real agent, the KBS process).
 */
import { createPrivateKey, generateKeyPairSync } from 'node:crypto';
import { request as httpRequest } from 'node:http';
import { flattenedDecrypt } from 'jose';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { KbsDeps } from '../app-env.js';
import { createApp } from '../app.js';
import { defaultAttestationPolicy } from '../attestation/attestation-policy.js';
import type { TeeAppraiser } from '../attestation/tee-appraiser.js';
import { createAuditLog } from '../audit/audit-log.js';
import { createMemoryAuditSink } from '../audit/sink.js';
import { KbsError } from '../errors.js';
import { HTTP_SERVER_DEFAULTS } from '../http-server/http-server-config.js';
import { listenKbs, type KbsListener } from '../http-server/listen.js';
import { createMetrics } from '../metrics/metrics.js';
import { affirmingResourcePolicy } from '../release/resource-policy.js';
import { openMemoryState } from '../state/index.js';
import type { KbsState } from '../state/ports.js';
import { EarSigner } from '../token/ear-signer.js';
import { matchFlowRoute } from './flow-listener.js';

const MAX_BODY = 8192;
const SECRET = 'flow-listener-secret';
/** Enough for every /auth the tests before the rate-limit test send (both servers share one bucket). */
const AUTH_BURST = 40;
let state: KbsState;
let deps: KbsDeps;
const sink = createMemoryAuditSink();
const metrics = createMetrics();
const servers: Record<'hono' | 'node', KbsListener> = {} as Record<'hono' | 'node', KbsListener>;

const appraiser: TeeAppraiser = {
  tee: 'tpm',
  async appraise(input) {
    if (input.evidence !== 'good') throw new KbsError('ATTESTATION_FAILED', 'stand-in appraiser refused the evidence');
    return { teeClaims: { ak_public: 'AAAA' }, reportDataHex: '00', vector: { hardware: 2, 'instance-identity': 2 } };
  },
};

beforeAll(async () => {
  state = await openMemoryState({ sessionLimits: { maxSessions: 1000, maxSessionBytes: 1 << 20 } });
  deps = {
    state,
    sessionTtlMs: 60_000,
    signer: await EarSigner.create({ privateKey: generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey, issuer: 'test', lifetimeMs: 60_000 }),
    appraisers: new Map([['tpm', appraiser]]),
    attestationPolicy: defaultAttestationPolicy,
    resourcePolicy: affirmingResourcePolicy,
    resources: {
      get: async (path) => (path.tag === 'present' ? new TextEncoder().encode(SECRET) : undefined),
      put: async () => ({ version: 1 }),
      delete: async () => false,
      generate: async () => ({ version: 1 }),
      rotate: async () => ({ version: 1 }),
    },
    adminAuth: { authorize: async () => ({ name: 'test', role: 'admin' }) } as unknown as KbsDeps['adminAuth'],
    logger: pino({ level: 'silent' }),
    maxBodyBytes: MAX_BODY,
    maxAuthBodyBytes: 2048,
    build: 'test',
    owners: { audit: await createAuditLog({ sink }), metrics, rateLimits: { auth: { ratePerSec: 0.001, burst: AUTH_BURST } } },
  };
  const app = createApp(deps);
  const http = { ...HTTP_SERVER_DEFAULTS, tls: undefined, insecureHttp: true };
  servers.hono = await listenKbs({ fetch: app.fetch, host: '127.0.0.1', port: 0, http });
  servers.node = await listenKbs({ fetch: app.fetch, flowDeps: deps, host: '127.0.0.1', port: 0, http });
});

afterAll(async () => {
  await Promise.all(Object.values(servers).map((s) => s.close()));
  await state?.close();
});

interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

function send(server: 'hono' | 'node', method: string, path: string, opts: { body?: string; headers?: Record<string, string>; chunked?: boolean } = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: '127.0.0.1', port: servers[server].port, method, path, headers: opts.headers ?? {} }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.on('error', reject);
    if (opts.body !== undefined) {
      if (opts.chunked === true) {
        req.write(opts.body.slice(0, 10));
        req.write(opts.body.slice(10));
      } else {
        req.setHeader('content-length', Buffer.byteLength(opts.body));
        req.write(opts.body);
      }
    }
    req.end();
  });
}

/** What must agree between the two servers: status, body (random parts masked), headers (request id masked). */
function comparable(a: Answer): unknown {
  const headers = { ...a.headers };
  delete headers['date'];
  delete headers['keep-alive'];
  delete headers['connection'];
  if (typeof headers['x-request-id'] === 'string') headers['x-request-id'] = /^[0-9a-f-]{36}$/.test(headers['x-request-id']) ? '<uuid>' : headers['x-request-id'];
  const cookie = headers['set-cookie'];
  if (Array.isArray(cookie)) headers['set-cookie'] = cookie.map((c) => c.replace(/^kbs-session-id=[^;]+/, 'kbs-session-id=<id>').replace(/Expires=[^;]+/, 'Expires=<t>'));
  if (typeof headers['content-length'] === 'string' && a.body.includes('"nonce"')) headers['content-length'] = '<n>';
  let body: unknown = a.body;
  try {
    body = JSON.parse(a.body);
  } catch {
    /* compared as text */
  }
  if (typeof body === 'object' && body !== null && 'nonce' in body) body = { ...body, nonce: '<nonce>' };
  return { status: a.status, headers, body };
}

const JSON_HEADERS = { 'content-type': 'application/json' };
const AUTH_BODY = JSON.stringify({ version: '0.4.0', tee: 'tpm', 'extra-params': '' });

describe('matchFlowRoute', () => {
  it('takes exactly the three flow routes, and leaves anything it would have to decode or guess to Hono', () => {
    expect(matchFlowRoute('POST', '/kbs/v0/auth')?.route).toBe('auth');
    expect(matchFlowRoute('POST', '/kbs/v0/attest?x=1')?.route).toBe('attest');
    expect(matchFlowRoute('GET', '/kbs/v0/resource/default/key/a')).toEqual({ route: 'resource', pattern: '/kbs/v0/resource/:repository/:type/:tag', resourcePath: 'default/key/a' });
    expect(matchFlowRoute('GET', '/kbs/v0/resource/default/key/a?version=2')?.resourcePath).toBe('default/key/a');
    for (const [method, url] of [
      ['GET', '/kbs/v0/auth'],
      ['PUT', '/kbs/v0/auth'],
      ['POST', '/kbs/v0/auth/'],
      ['POST', '/kbs/v0/resource/default/key/a'],
      ['HEAD', '/kbs/v0/resource/default/key/a'],
      ['GET', '/kbs/v0/resource/default/key'],
      ['GET', '/kbs/v0/resource/default/key/a/b'],
      ['GET', '/kbs/v0/resource/default//a'],
      ['GET', '/kbs/v0/resource/default/key%2Fx/a'],
      ['GET', '/kbs/v0/resource/default/key/%61'],
      ['GET', 'http://evil/kbs/v0/resource/default/key/a'],
      ['GET', '*'],
      ['GET', undefined],
    ] as const) {
      expect(matchFlowRoute(method, url), `${method} ${url}`).toBeUndefined();
    }
  });
});

describe('flow routes served by node and by Hono', () => {
  it('answer the same to valid, malformed, oversized and unauthenticated requests', async () => {
    const cases: [string, string, { body?: string; headers?: Record<string, string>; chunked?: boolean }][] = [
      ['POST', '/kbs/v0/auth', { body: AUTH_BODY, headers: JSON_HEADERS }],
      ['POST', '/kbs/v0/auth', { body: JSON.stringify({ version: '0.1.0', tee: 'tpm' }), headers: JSON_HEADERS }],
      ['POST', '/kbs/v0/auth', { body: JSON.stringify({ version: '0.4.0', tee: 'sample' }), headers: JSON_HEADERS }],
      ['POST', '/kbs/v0/auth', { body: '{"version":', headers: JSON_HEADERS }],
      ['POST', '/kbs/v0/auth', { body: 'version=0.4.0', headers: { 'content-type': 'application/x-www-form-urlencoded' } }],
      ['POST', '/kbs/v0/attest', { body: JSON.stringify({ pad: 'x'.repeat(MAX_BODY) }), headers: { ...JSON_HEADERS, cookie: `kbs-session-id=${'0'.repeat(32)}` }, chunked: true }],
      ['POST', '/kbs/v0/attest', { body: '{}', headers: JSON_HEADERS }],
      ['POST', '/kbs/v0/attest', { body: '{}', headers: { ...JSON_HEADERS, cookie: `kbs-session-id=${'0'.repeat(32)}` } }],
      ['GET', '/kbs/v0/resource/default/key/present', {}],
      ['GET', '/kbs/v0/resource/default/key/present', { headers: { authorization: 'Bearer not.a.token' } }],
      ['GET', '/kbs/v0/resource/default/key/present', { headers: { authorization: 'Basic abc' } }],
      ['GET', '/kbs/v0/resource/default/key/present?version=x', { headers: { 'x-request-id': 'trace-1' } }],
      ['GET', '/kbs/v0/resource/default/key/present', { headers: { 'x-request-id': 'bad id;' } }],
    ];
    for (const [method, path, opts] of cases) {
      const [viaHono, viaNode] = [await send('hono', method, path, opts), await send('node', method, path, opts)];
      expect(comparable(viaNode), `${method} ${path} ${opts.body?.slice(0, 40) ?? ''}`).toEqual(comparable(viaHono));
      expect(viaNode.headers['x-request-id']).toMatch(/^(trace-1|[0-9a-f-]{36})$/);
    }
    // The auth's 413 is a declared-length refusal; the chunked one above closed the connection.
    const big = JSON.stringify({ version: '0.4.0', tee: 'tpm', pad: 'x'.repeat(4096) });
    const [h413, n413] = [await send('hono', 'POST', '/kbs/v0/auth', { body: big, headers: JSON_HEADERS }), await send('node', 'POST', '/kbs/v0/auth', { body: big, headers: JSON_HEADERS })];
    expect(n413.status).toBe(413);
    expect(comparable(n413)).toEqual(comparable(h413));
  });

  it.each(['hono', 'node'] as const)('serve a whole flow via %s: cookie, attestation, release wrapped to the tee key', async (server) => {
    const auth = await send(server, 'POST', '/kbs/v0/auth', { body: AUTH_BODY, headers: JSON_HEADERS });
    expect(auth.status).toBe(200);
    const setCookie = auth.headers['set-cookie']?.[0] ?? '';
    expect(setCookie).toMatch(/^kbs-session-id=[0-9a-f]+; Max-Age=60; Path=\/kbs; Expires=.+; HttpOnly; SameSite=Strict$/);
    const cookie = setCookie.split(';')[0]!;
    const { nonce } = JSON.parse(auth.body) as { nonce: string };
    const tee = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const jwk = tee.publicKey.export({ format: 'jwk' }) as { x: string; y: string };
    const attestation = (evidence: string) =>
      JSON.stringify({ 'runtime-data': { nonce, 'tee-pubkey': { kty: 'EC', crv: 'P-256', alg: 'ECDH-ES+A256KW', x: jwk.x, y: jwk.y } }, 'tee-evidence': { primary_evidence: evidence, additional_evidence: '' } });
    const attested = await send(server, 'POST', '/kbs/v0/attest', { body: attestation('good'), headers: { ...JSON_HEADERS, cookie } });
    expect(attested.status, attested.body).toBe(200);
    const { token } = JSON.parse(attested.body) as { token: string };
    expect(await deps.signer.verify(token)).toHaveProperty('submods');
    // SECURITY (replay): the nonce was consumed; the same evidence again is refused on either path.
    const replay = await send(server, 'POST', '/kbs/v0/attest', { body: attestation('good'), headers: { ...JSON_HEADERS, cookie } });
    expect(replay.status).toBe(401);
    for (const how of [{ cookie }, { authorization: `Bearer ${token}` }] as Record<string, string>[]) {
      const released = await send(server, 'GET', '/kbs/v0/resource/default/key/present', { headers: how });
      expect(released.status, released.body).toBe(200);
      const jwe = JSON.parse(released.body) as Parameters<typeof flattenedDecrypt>[0];
      const { plaintext } = await flattenedDecrypt(jwe, createPrivateKey(tee.privateKey.export({ format: 'pem', type: 'pkcs8' })));
      expect(new TextDecoder().decode(plaintext)).toBe(SECRET);
    }
    const missing = await send(server, 'GET', '/kbs/v0/resource/default/key/absent', { headers: { cookie } });
    expect(missing.status).toBe(404);
    expect(JSON.parse(missing.body)).toMatchObject({ type: expect.stringMatching(/ResourceNotFound$/) });
  });

  it.each(['hono', 'node'] as const)('refuse evidence the appraiser refuses via %s, and audit it with request id and client address', async (server) => {
    const auth = await send(server, 'POST', '/kbs/v0/auth', { body: AUTH_BODY, headers: { ...JSON_HEADERS, 'x-request-id': `refused-${server}` } });
    const cookie = (auth.headers['set-cookie']?.[0] ?? '').split(';')[0]!;
    const { nonce } = JSON.parse(auth.body) as { nonce: string };
    const body = JSON.stringify({ 'runtime-data': { nonce, 'tee-pubkey': { kty: 'EC', crv: 'P-256', x: 'AA', y: 'AA' } }, 'tee-evidence': { primary_evidence: 'bad', additional_evidence: '' } });
    const refused = await send(server, 'POST', '/kbs/v0/attest', { body, headers: { ...JSON_HEADERS, cookie, 'x-request-id': `refused-${server}` } });
    expect(refused.status).toBe(401);
    expect(JSON.parse(refused.body)).toMatchObject({ detail: expect.stringContaining('stand-in appraiser refused') });
    const records = sink.records.filter((r) => r.fields.requestId === `refused-${server}`);
    expect(records.map((r) => [r.kind, r.fields.verdict])).toEqual([
      ['auth', 'challenged'],
      ['attest', 'failed'],
    ]);
    expect(records.map((r) => r.fields.client)).toEqual(['127.0.0.1', '127.0.0.1']);
  });

  it('label request metrics with the route pattern on both paths', async () => {
    const text = await metrics.render();
    for (const route of ['/kbs/v0/auth', '/kbs/v0/attest', '/kbs/v0/resource/:repository/:type/:tag']) {
      expect(text).toContain(`route="${route}"`);
    }
    expect(text).not.toContain('route="/kbs/v0/resource/default');
  });

  it('apply the per-client /auth rate limit on the node path too: 429 RateLimited with retry-after', async () => {
    // SECURITY (brute force, resource exhaustion): the node path takes from the same bucket as Hono's middleware.
    let last: Answer | undefined;
    for (let i = 0; i < 2 * AUTH_BURST && last?.status !== 429; i++) last = await send('node', 'POST', '/kbs/v0/auth', { body: AUTH_BODY, headers: JSON_HEADERS });
    expect(last?.status).toBe(429);
    expect(Number(last?.headers['retry-after'])).toBeGreaterThanOrEqual(1);
    expect(JSON.parse(last!.body)).toMatchObject({ type: expect.stringMatching(/RateLimited$/) });
    const viaHono = await send('hono', 'POST', '/kbs/v0/auth', { body: AUTH_BODY, headers: JSON_HEADERS });
    expect(comparable(viaHono)).toEqual(comparable(last!));
  });

  it('answer 500 and keep serving when answering itself fails (no unhandled rejection ends the process)', async () => {
    const broken = { ...createMetrics(), observeRequest: () => { throw new Error('metrics sink failed'); } };
    const brokenDeps: KbsDeps = { ...deps, owners: { ...deps.owners, metrics: broken } };
    const app = createApp(brokenDeps);
    const l = await listenKbs({ fetch: app.fetch, flowDeps: brokenDeps, host: '127.0.0.1', port: 0, http: { ...HTTP_SERVER_DEFAULTS, tls: undefined, insecureHttp: true } });
    try {
      const get = (): Promise<Answer> =>
        new Promise((resolve, reject) => {
          const req = httpRequest({ host: '127.0.0.1', port: l.port, path: '/kbs/v0/resource/default/key/present' }, (res) => {
            let body = '';
            res.on('data', (d: Buffer) => (body += d.toString()));
            res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
          });
          req.on('error', reject);
          req.end();
        });
      for (let i = 0; i < 2; i++) {
        const r = await get();
        expect(r.status).toBe(500);
        expect(JSON.parse(r.body)).toMatchObject({ type: expect.stringMatching(/InternalError$/) });
      }
    } finally {
      await l.close();
    }
  });
});
