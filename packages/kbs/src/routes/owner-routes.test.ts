/**
 * The workload-owner endpoints in process (app.request): policy admin (CEL, Trustee bodies, compile
 * errors with positions, rego refused), scoped releases, the admin ACL with roles and repositories,
 * hostile admin tokens, the audit trail (no secret values), rate limits and /metrics.
 */
import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SignJWT, base64url } from 'jose';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { verifyAuditChain, type AuditRecord } from '@keyhold/audit';
import { createEmbeddedStore, type SecretStore } from '@keyhold/kms-adapter';
import { createPolicyEngine, type PolicyEngine } from '@keyhold/policy';
import { createApp } from '../app.js';
import type { KbsDeps } from '../app-env.js';
import { configuredAdminAuthorizer } from '../admin/configured-authorizer.js';
import { DEFAULT_ADMIN_ROLES } from '../admin-auth/acl.js';
import { createAuditLog } from '../audit/audit-log.js';
import { createMemoryAuditSink } from '../audit/sink.js';
import { celAttestationPolicy } from '../attestation/cel-attestation-policy.js';
import { createMetrics } from '../metrics/metrics.js';
import { celResourcePolicy } from '../release/cel-resource-policy.js';
import { kmsResourceStore } from '../release/kms-resource-store.js';
import { openMemoryState, openStateAuditLog, StateError } from '../state/index.js';
import type { KbsState } from '../state/ports.js';
import { earClaims, emptyVector } from '../token/ear-claims.js';
import { EarSigner } from '../token/ear-signer.js';

const SECRET_A = 'owner-a-secret-value-7f3e';
const SECRET_B = 'owner-b-secret-value-9c1d';

let dir: string;
let store: SecretStore;
let deps: KbsDeps;
let app: ReturnType<typeof createApp>;
let engine: PolicyEngine;
let state: KbsState;
const keys: Record<string, KeyObject> = {};

async function token(name: string, opts: { lifetimeS?: number; key?: KeyObject; alg?: 'EdDSA' | 'ES256' } = {}): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  return new SignJWT({})
    .setProtectedHeader({ alg: opts.alg ?? 'EdDSA', kid: name })
    .setIssuedAt(now - 5)
    .setExpirationTime(now + (opts.lifetimeS ?? 300))
    .sign(opts.key ?? keys[name]!);
}

async function call(method: string, path: string, who: string | undefined, body?: unknown): Promise<Response> {
  const headers: Record<string, string> = {};
  if (who !== undefined) headers['authorization'] = `Bearer ${await token(who)}`;
  if (body !== undefined) headers['content-type'] = typeof body === 'string' ? 'application/octet-stream' : 'application/json';
  return app.request(path, { method, headers, ...(body !== undefined ? { body: typeof body === 'string' ? body : JSON.stringify(body) } : {}) });
}

const b64 = (v: unknown): string => base64url.encode(typeof v === 'string' ? v : JSON.stringify(v));

/** A verified-looking EAR token from this KBS's signer, as /attest would issue. */
async function earToken(opts: { status?: 'affirming' | 'contraindicated'; initDataClaims?: Record<string, unknown> } = {}): Promise<string> {
  const { publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const jwk = publicKey.export({ format: 'jwk' }) as { x: string; y: string };
  return deps.signer.sign(
    earClaims({
      tee: 'tpm',
      status: opts.status ?? 'affirming',
      vector: { ...emptyVector(), 'instance-identity': 2, hardware: 2 },
      policyId: 'default@0',
      teeClaims: { ak_public: 'AAAA' },
      reportDataHex: '00',
      nonce: 'n',
      teePubkey: { kty: 'EC', crv: 'P-256', alg: 'ECDH-ES+A256KW', x: jwk.x, y: jwk.y },
      ...(opts.initDataClaims !== undefined ? { initDataClaims: opts.initDataClaims } : {}),
      build: 'test',
    }),
  );
}

async function release(path: string, tokenText: string): Promise<Response> {
  return app.request(`/kbs/v0/resource/${path}`, { headers: { authorization: `Bearer ${tokenText}` } });
}

async function detail(res: Response): Promise<{ type: string; detail: string }> {
  return (await res.json()) as { type: string; detail: string };
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'keyhold-owner-routes-'));
  store = await createEmbeddedStore({ backend: 'embedded', dir: join(dir, 'secrets') });
  const identities = [];
  for (const [name, role] of [
    ['root', 'admin'],
    ['alice', 'owner-a'],
    ['bob', 'owner-b'],
    ['audrey', 'auditor'],
  ] as const) {
    const { privateKey, publicKey } = generateKeyPairSync('ed25519');
    keys[name] = privateKey;
    identities.push({ name, role, publicKeyPem: publicKey.export({ format: 'pem', type: 'spki' }).toString() });
  }
  const ownerRole = (repo: string) => ({
    rules: [
      { methods: ['*'], path: '/kbs/v0/(resource|resource-policy|resources)/.*' },
      { methods: ['*'], path: '/kbs/v0/resource-policy/[^/]+' },
    ],
    repositories: [repo],
  });
  state = await openMemoryState({ sessionLimits: { maxSessions: 100, maxSessionBytes: 1 << 20 } });
  engine = createPolicyEngine({ store: state.policies });
  deps = {
    state,
    sessionTtlMs: 60_000,
    signer: await EarSigner.create({ privateKey: generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey, issuer: 'keyhold-kbs', lifetimeMs: 60_000 }),
    appraisers: new Map(),
    attestationPolicy: celAttestationPolicy({ engine }),
    resourcePolicy: celResourcePolicy(engine),
    resources: kmsResourceStore(store),
    adminAuth: configuredAdminAuthorizer({ identities, roles: { ...DEFAULT_ADMIN_ROLES, 'owner-a': ownerRole('a'), 'owner-b': ownerRole('b') } }),
    logger: pino({ level: 'silent' }),
    maxBodyBytes: 1024 * 1024,
    build: 'test',
    owners: {
      policies: engine,
      audit: await openStateAuditLog(state),
      rateLimits: { auth: { ratePerSec: 0.01, burst: 3 }, admin: { ratePerSec: 1000, burst: 1000 } },
      metrics: createMetrics({ processMetrics: false }),
    },
  };
  app = createApp(deps);
  expect((await call('POST', '/kbs/v0/resource/a/key/1', 'root', SECRET_A)).status).toBe(200);
  expect((await call('POST', '/kbs/v0/resource/b/key/1', 'root', SECRET_B)).status).toBe(200);
});

afterAll(async () => {
  await state?.close();
  await store?.close();
  if (dir !== undefined) await rm(dir, { recursive: true, force: true });
});

describe('policy administration', () => {
  it('refuses a rego attestation policy with a clear 400', async () => {
    const res = await call('POST', '/kbs/v0/attestation-policy', 'root', { type: 'rego', policy_id: 'default_cpu', policy: b64('package policy\n') });
    expect(res.status).toBe(400);
    expect((await detail(res)).detail).toMatch(/rego is not supported, use cel/);
  });

  it('refuses a resource policy that does not compile, naming the line, column and reason', async () => {
    const res = await call('POST', '/kbs/v0/resource-policy/a', 'root', { policy: b64('ear.status == "affirming" &&\n  repository.size() + "x"') });
    expect(res.status).toBe(400);
    const d = await detail(res);
    expect(d.type).toMatch(/InvalidRequest$/);
    expect(d.detail).toMatch(/rule 2:\d+: /);
    const syntax = await call('POST', '/kbs/v0/resource-policy', 'root', { policy: b64('ear.status ==') });
    expect(syntax.status).toBe(400);
    expect((await detail(syntax)).detail).toMatch(/rule 1:\d+: syntax error/);
    // Nothing was stored by the refused uploads.
    expect((await engine.listPolicies()).length).toBe(0);
  });

  it('refuses a body that tries to choose the repository (scope comes from the path only)', async () => {
    const res = await call('POST', '/kbs/v0/resource-policy', 'root', { policy: b64('true'), repository: 'a' });
    expect(res.status).toBe(400);
  });

  it('stores an attestation policy and versions it; the active one appraises with its id@version', async () => {
    const doc = { id: 'default', type: 'cel', kind: 'attestation', rules: { vector: { hardware: 'has(claims.tpm) ? 2 : 0', 'instance-identity': '2' }, status: 'vector["hardware"] == 2 ? "affirming" : "none"' } };
    const r1 = await call('POST', '/kbs/v0/attestation-policy', 'root', { type: 'cel', policy_id: 'default', policy: b64(doc) });
    expect(r1.status, await r1.clone().text()).toBe(200);
    expect(await r1.json()).toMatchObject({ policy_id: 'default', version: 1, active: true });
    const r2 = await call('POST', '/kbs/v0/attestation-policy', 'root', { type: 'cel', policy: b64(doc) });
    expect(await r2.json()).toMatchObject({ version: 2 });
    const list = (await (await call('GET', '/kbs/v0/attestation-policy', 'root')).json()) as { policies: { id: string; version: number }[] };
    expect(list.policies).toEqual([expect.objectContaining({ id: 'default', version: 2 })]);
    const verdict = await deps.attestationPolicy.evaluate({ tee: 'tpm', appraisal: { teeClaims: {}, reportDataHex: '', vector: { 'instance-identity': 2 } }, references: await state.referenceValues.snapshot() });
    expect(verdict).toMatchObject({ status: 'affirming', policyId: 'default', version: 2 });
    expect((await call('DELETE', '/kbs/v0/attestation-policy/default', 'root')).status).toBe(204);
    expect((await call('DELETE', '/kbs/v0/attestation-policy/default', 'root')).status).toBe(404);
  });

  it('keeps two owners’ repository-scoped policies apart, and a deny is 403 PolicyDeny with the reason', async () => {
    const affirming = await earToken();
    expect((await release('a/key/1', affirming)).status).toBe(200);
    expect((await call('POST', '/kbs/v0/resource-policy/b', 'bob', { policy: b64({ id: 'b-deny', type: 'cel', kind: 'resource', rule: 'false' }) })).status).toBe(200);
    const denied = await release('b/key/1', affirming);
    expect(denied.status).toBe(403);
    const d = await detail(denied);
    expect(d.type).toMatch(/PolicyDeny$/);
    expect(d.detail).toMatch(/b-deny@1 \(policy rule evaluated to false\)/);
    // Owner b's deny-all does not touch owner a's releases.
    expect((await release('a/key/1', affirming)).status).toBe(200);
    // Owner a lets a contraindicated token through in a only; b still refuses it.
    expect((await call('POST', '/kbs/v0/resource-policy/a', 'alice', { policy: b64('true') })).status).toBe(200);
    const bad = await earToken({ status: 'contraindicated' });
    expect((await release('a/key/1', bad)).status).toBe(200);
    expect((await release('b/key/1', bad)).status).toBe(403);
    const eff = (await (await call('GET', '/kbs/v0/resource-policy/a', 'alice')).json()) as { scope: string; version: number };
    expect(eff).toMatchObject({ scope: 'repository', version: 1 });
    expect((await call('DELETE', '/kbs/v0/resource-policy/a', 'alice')).status).toBe(204);
    expect((await release('a/key/1', bad)).status).toBe(403);
    expect((await call('DELETE', '/kbs/v0/resource-policy/b', 'bob')).status).toBe(204);
  });
});

describe('admin ACL (role × endpoint × repository)', () => {
  const cases: [string, string, string, number][] = [
    ['root', 'GET', '/kbs/v0/resources', 200],
    ['root', 'GET', '/kbs/v0/policies', 200],
    ['root', 'GET', '/kbs/v0/audit', 200],
    ['alice', 'GET', '/kbs/v0/resources/a', 200],
    ['alice', 'GET', '/kbs/v0/resources/b', 403],
    ['alice', 'GET', '/kbs/v0/resources', 403],
    ['alice', 'POST', '/kbs/v0/resource-policy', 403],
    ['alice', 'GET', '/kbs/v0/resource-policy/a', 200],
    ['alice', 'GET', '/kbs/v0/resource-policy/b', 403],
    ['alice', 'DELETE', '/kbs/v0/resource/b/key/1', 403],
    ['alice', 'GET', '/kbs/v0/audit', 403],
    ['alice', 'POST', '/kbs/v0/attestation-policy', 403],
    ['alice', 'GET', '/kbs/v0/reference-value', 403],
    ['bob', 'GET', '/kbs/v0/resources/b', 200],
    ['bob', 'GET', '/kbs/v0/resources/a/key/1', 403],
    ['audrey', 'GET', '/kbs/v0/audit', 200],
    ['audrey', 'GET', '/kbs/v0/resources', 403],
    ['audrey', 'POST', '/kbs/v0/resource/a/key/2', 403],
  ];
  it.each(cases)('%s %s %s → %i', async (who, method, path, status) => {
    const res = await call(method, path, who, method === 'POST' ? (path.includes('/resource/') ? 'x' : { policy: b64('true') }) : undefined);
    expect(res.status).toBe(status);
    if (status === 403) expect((await detail(res)).type).toMatch(/AdminAuthAccess$/);
  });

  it('lists resource metadata but never values', async () => {
    const res = await call('GET', '/kbs/v0/resources/a', 'alice');
    const text = await res.text();
    expect(JSON.parse(text)).toMatchObject({ resources: [{ path: 'a/key/1', version: 1 }] });
    expect(text).not.toContain(SECRET_A);
    const versions = await call('GET', '/kbs/v0/resources/a/key/1', 'alice');
    expect(await versions.json()).toMatchObject({ path: 'a/key/1', versions: [{ version: 1 }] });
  });

  it('gets and deletes reference values by name', async () => {
    await state.referenceValues.set({ tpm_pcr07: ['aa'] });
    expect(await (await call('GET', '/kbs/v0/reference-value/tpm_pcr07', 'root')).json()).toEqual({ name: 'tpm_pcr07', values: ['aa'] });
    expect((await call('DELETE', '/kbs/v0/reference-value/tpm_pcr07', 'root')).status).toBe(204);
    expect((await call('GET', '/kbs/v0/reference-value/tpm_pcr07', 'root')).status).toBe(404);
  });
});

describe('hostile admin tokens are 401 AdminAuthAccess', () => {
  const { publicKey } = generateKeyPairSync('ed25519');
  const pubDer = publicKey.export({ format: 'der', type: 'spki' });
  const bad: [string, () => Promise<string>][] = [
    ['missing', async () => ''],
    ['expired', () => token('root', { lifetimeS: -120 })],
    ['wrong key', () => token('root', { key: generateKeyPairSync('ed25519').privateKey })],
    ['alg none', async () => `${base64url.encode(JSON.stringify({ alg: 'none', kid: 'root' }))}.${base64url.encode(JSON.stringify({ exp: 9_999_999_999 }))}.`],
    [
      'HS256 keyed with public key bytes',
      () =>
        new SignJWT({})
          .setProtectedHeader({ alg: 'HS256', kid: 'root' })
          .setExpirationTime('5m')
          .sign(new Uint8Array(pubDer)),
    ],
    ['garbage', async () => 'not.a.jwt'],
  ];
  it.each(bad)('%s', async (_name, make) => {
    const t = await make();
    const res = await app.request('/kbs/v0/resources', { headers: t === '' ? {} : { authorization: `Bearer ${t}` } });
    expect(res.status).toBe(401);
    expect((await detail(res)).type).toMatch(/AdminAuthAccess$/);
  });
});

describe('audit trail, rate limits, metrics', () => {
  it('records releases, denials and admin changes in a valid chain without secret values', async () => {
    const res = await call('GET', '/kbs/v0/audit?kind=deny', 'audrey');
    const body = (await res.json()) as { records: AuditRecord[] };
    expect(body.records.length).toBeGreaterThan(0);
    expect(body.records[0]!.fields).toMatchObject({ resourcePath: 'b/key/1', policyId: 'b-deny', policyVersion: 1, verdict: 'deny' });
    const { records } = await state.audit.read();
    expect(verifyAuditChain(records).ok).toBe(true);
    const all = JSON.stringify(records);
    expect(all).toContain('"action":"resource-policy.put:b"');
    expect(all).toContain('"actor":"bob"');
    expect(all).toContain('"kind":"release"');
    expect(all).toContain('"verdict":"refused"');
    expect(all).not.toContain(SECRET_A);
    expect(all).not.toContain(SECRET_B);
    expect((await call('GET', '/kbs/v0/audit?kind=bogus', 'audrey')).status).toBe(400);
  });

  it('answers 429 RateLimited with retry-after once the /auth burst is spent', async () => {
    const statuses: number[] = [];
    let last: Response | undefined;
    for (let i = 0; i < 5; i++) {
      last = await app.request('/kbs/v0/auth', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ version: '0.4.0', tee: 'tpm', 'extra-params': {} }) });
      statuses.push(last.status);
    }
    // No tpm appraiser is wired here, so allowed calls answer 400 UnsupportedTee; the limiter runs first.
    expect(statuses.slice(0, 3)).toEqual([400, 400, 400]);
    expect(statuses.slice(3)).toEqual([429, 429]);
    expect((await detail(last!)).type).toMatch(/RateLimited$/);
    expect(Number(last!.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
  });

  it('exports Prometheus metrics by route pattern, releases per repository, denials and rate-limit hits', async () => {
    const res = await app.request('/metrics');
    expect(res.status).toBe(200);
    const text = await res.text();
    expect(text).toMatch(/keyhold_kbs_releases_total\{repository="a"\} [1-9]/);
    expect(text).toMatch(/keyhold_kbs_policy_denials_total\{kind="resource",scope="repository"\} [1-9]/);
    expect(text).toMatch(/keyhold_kbs_rate_limit_hits_total\{scope="auth"\} 2/);
    expect(text).toContain('route="/kbs/v0/resource/:repository/:type/:tag"');
    expect(text).not.toContain('route="/kbs/v0/resource/a/key/1"');
  });
});

describe('fail-closed and defence-in-depth checks', () => {
  it('refuses to release (503, no secret) when the audit trail cannot be written', async () => {
    // A sink whose disk is full (fault injection: every append fails).
    const broken = { ...createMemoryAuditSink(), append: async () => Promise.reject(new Error('disk full')) };
    const strict = createApp({ ...deps, owners: { ...deps.owners, audit: await createAuditLog({ sink: broken }) } });
    const res = await strict.request('/kbs/v0/resource/a/key/1', { headers: { authorization: `Bearer ${await earToken()}` } });
    expect(res.status).toBe(503);
    const text = await res.text();
    expect(text).toMatch(/StorageUnavailable/);
    expect(text).not.toContain('ciphertext');
  });

  // SECURITY negative test: a rate-limit backend outage must not switch the limit off.
  it('refuses /auth and admin calls with 503 when the rate-limit state cannot be reached', async () => {
    const down = { ...state, rateLimits: { take: () => Promise.reject(new StateError('STATE_UNAVAILABLE', 'redis is down')) } };
    const strict = createApp({ ...deps, state: down });
    const a = await strict.request('/kbs/v0/auth', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ version: '0.4.0', tee: 'tpm', 'extra-params': {} }) });
    expect(a.status).toBe(503);
    expect((await detail(a)).type).toMatch(/StorageUnavailable$/);
    const r = await strict.request('/kbs/v0/resources', { headers: { authorization: `Bearer ${await token('root')}` } });
    expect(r.status).toBe(503);
  });

  it('writes one record per admin change (the handler’s own, not a second generic one)', async () => {
    expect((await call('POST', '/kbs/v0/resource/a/key/9', 'alice', 'nine')).status).toBe(200);
    const mine = (await state.audit.read()).records.filter((r) => r.fields.resourcePath === 'a/key/9');
    expect(mine.map((r) => r.fields.action)).toEqual(['resource.put']);
    expect(mine[0]!.fields.actor).toBe('alice');
  });

  it('validates repository and reference-value names itself, even when the ACL is switched off', async () => {
    const open = createApp({ ...deps, adminAuth: configuredAdminAuthorizer({ identities: [], insecureAllowAll: true }) });
    const bad = await open.request('/kbs/v0/resource-policy/b%24d', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ policy: b64('true') }) });
    expect(bad.status).toBe(404);
    expect((await detail(bad)).detail).toMatch(/repository must match/);
    const rv = await open.request('/kbs/v0/reference-value/a%20b');
    expect(rv.status).toBe(400);
    const b64bad = await open.request('/kbs/v0/resource-policy', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ policy: 'not base64url!' }) });
    expect(b64bad.status).toBe(400);
    expect((await detail(b64bad)).detail).toMatch(/base64url/);
    const attNotJson = await open.request('/kbs/v0/attestation-policy', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ type: 'cel', policy: b64('true') }) });
    expect(attNotJson.status).toBe(400);
  });
});
