/**
 * The attestation flow's handlers (plain functions of a FlowExchange) served as Hono routes over a
 * real socket (listenKbs, the production listener): a whole auth → attest → resource flow with the
 * session cookie and with a bearer token, the secret wrapped to the tee key, replay refused, refused
 * evidence audited with the request id and client address, metrics labelled by route pattern, and
 * the per-client `/auth` rate limit.
 *
 * The TEE here is a stand-in appraiser ('tpm' that accepts evidence "good" and refuses anything
 * else): what is under test is the HTTP layer; real TPM appraisal runs through the same routes in
 * the e2e suite (swtpm, the real agent, the KBS process).
 */
import { createPrivateKey, generateKeyPairSync } from 'node:crypto';
import { flattenedDecrypt } from 'jose';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sendHttp, type HttpAnswer, type SendOptions } from './http-send.test-support.js';
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

const MAX_BODY = 8192;
const SECRET = 'flow-on-hono-secret';
/** Enough for every /auth the tests before the rate-limit test send. */
const AUTH_BURST = 40;
let state: KbsState;
let deps: KbsDeps;
const sink = createMemoryAuditSink();
const metrics = createMetrics();
let server: KbsListener;

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
  server = await listenKbs({ fetch: app.fetch, host: '127.0.0.1', port: 0, http });
});

afterAll(async () => {
  await server?.close();
  await state?.close();
});

type Answer = HttpAnswer;

/** One request over a real socket; `chunked` sends the body without a content-length. */
function send(method: string, path: string, opts: SendOptions = {}): Promise<Answer> {
  return sendHttp(server.port, method, path, opts);
}

const JSON_HEADERS = { 'content-type': 'application/json' };
const AUTH_BODY = JSON.stringify({ version: '0.4.0', tee: 'tpm', 'extra-params': '' });

describe('flow routes served through Hono', () => {
  it('serve a whole flow: cookie, attestation, release wrapped to the tee key', async () => {
    const auth = await send('POST', '/kbs/v0/auth', { body: AUTH_BODY, headers: JSON_HEADERS });
    expect(auth.status).toBe(200);
    const setCookie = auth.headers['set-cookie']?.[0] ?? '';
    expect(setCookie).toMatch(/^kbs-session-id=[0-9a-f]+; Max-Age=60; Path=\/kbs; Expires=.+; HttpOnly; SameSite=Strict$/);
    const cookie = setCookie.split(';')[0]!;
    const { nonce } = JSON.parse(auth.body) as { nonce: string };
    const tee = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const jwk = tee.publicKey.export({ format: 'jwk' }) as { x: string; y: string };
    const attestation = (evidence: string) =>
      JSON.stringify({ 'runtime-data': { nonce, 'tee-pubkey': { kty: 'EC', crv: 'P-256', alg: 'ECDH-ES+A256KW', x: jwk.x, y: jwk.y } }, 'tee-evidence': { primary_evidence: evidence, additional_evidence: '' } });
    const attested = await send('POST', '/kbs/v0/attest', { body: attestation('good'), headers: { ...JSON_HEADERS, cookie } });
    expect(attested.status, attested.body).toBe(200);
    const { token } = JSON.parse(attested.body) as { token: string };
    expect(await deps.signer.verify(token)).toHaveProperty('submods');
    // SECURITY (replay): the nonce was consumed; the same evidence again is refused on either path.
    const replay = await send('POST', '/kbs/v0/attest', { body: attestation('good'), headers: { ...JSON_HEADERS, cookie } });
    expect(replay.status).toBe(401);
    for (const how of [{ cookie }, { authorization: `Bearer ${token}` }] as Record<string, string>[]) {
      const released = await send('GET', '/kbs/v0/resource/default/key/present', { headers: how });
      expect(released.status, released.body).toBe(200);
      const jwe = JSON.parse(released.body) as Parameters<typeof flattenedDecrypt>[0];
      const { plaintext } = await flattenedDecrypt(jwe, createPrivateKey(tee.privateKey.export({ format: 'pem', type: 'pkcs8' })));
      expect(new TextDecoder().decode(plaintext)).toBe(SECRET);
    }
    const missing = await send('GET', '/kbs/v0/resource/default/key/absent', { headers: { cookie } });
    expect(missing.status).toBe(404);
    expect(JSON.parse(missing.body)).toMatchObject({ type: expect.stringMatching(/ResourceNotFound$/) });
  });

  it('refuse evidence the appraiser refuses, and audit it with request id and client address', async () => {
    const auth = await send('POST', '/kbs/v0/auth', { body: AUTH_BODY, headers: { ...JSON_HEADERS, 'x-request-id': 'refused-1' } });
    const cookie = (auth.headers['set-cookie']?.[0] ?? '').split(';')[0]!;
    const { nonce } = JSON.parse(auth.body) as { nonce: string };
    const body = JSON.stringify({ 'runtime-data': { nonce, 'tee-pubkey': { kty: 'EC', crv: 'P-256', x: 'AA', y: 'AA' } }, 'tee-evidence': { primary_evidence: 'bad', additional_evidence: '' } });
    const refused = await send('POST', '/kbs/v0/attest', { body, headers: { ...JSON_HEADERS, cookie, 'x-request-id': 'refused-1' } });
    expect(refused.status).toBe(401);
    expect(JSON.parse(refused.body)).toMatchObject({ detail: expect.stringContaining('stand-in appraiser refused') });
    const records = sink.records.filter((r) => r.fields.requestId === 'refused-1');
    expect(records.map((r) => [r.kind, r.fields.verdict])).toEqual([
      ['auth', 'challenged'],
      ['attest', 'failed'],
    ]);
    expect(records.map((r) => r.fields.client)).toEqual(['127.0.0.1', '127.0.0.1']);
  });

  it('label request metrics with the route pattern', async () => {
    const text = await metrics.render();
    for (const route of ['/kbs/v0/auth', '/kbs/v0/attest', '/kbs/v0/resource/:repository/:type/:tag']) {
      expect(text).toContain(`route="${route}"`);
    }
    expect(text).not.toContain('route="/kbs/v0/resource/default');
  });

  it('apply the per-client /auth rate limit: 429 RateLimited with retry-after', async () => {
    // SECURITY (brute force, resource exhaustion): one bucket per client address, shared by replicas.
    let last: Answer | undefined;
    for (let i = 0; i < 2 * AUTH_BURST && last?.status !== 429; i++) last = await send('POST', '/kbs/v0/auth', { body: AUTH_BODY, headers: JSON_HEADERS });
    expect(last?.status).toBe(429);
    expect(Number(last?.headers['retry-after'])).toBeGreaterThanOrEqual(1);
    expect(JSON.parse(last!.body)).toMatchObject({ type: expect.stringMatching(/RateLimited$/) });
  });
});
