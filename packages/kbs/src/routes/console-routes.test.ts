/**
 * The admin endpoints the owner console uses (issue 16), in process: policy version history
 * (contract form and the repository-scoped form owners' ACLs can allow), server-side policy tests,
 * and the health summary — with the same ACLs and repository limits as every admin call.
 */
import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SignJWT, base64url } from 'jose';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createEmbeddedStore, type SecretStore } from '@keyhold/kms-adapter';
import { createMemoryPolicyStore, createPolicyEngine } from '@keyhold/policy';
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
import { openMemoryState } from '../state/index.js';
import type { KbsState } from '../state/ports.js';
import { EarSigner } from '../token/ear-signer.js';

const SECRET = 'console-route-secret-4b1e';
let dir: string;
let store: SecretStore;
let deps: KbsDeps;
let state: KbsState;
let app: ReturnType<typeof createApp>;
const keys: Record<string, KeyObject> = {};

async function call(method: string, path: string, who: string, body?: unknown): Promise<Response> {
  const now = Math.floor(Date.now() / 1000);
  const jwt = await new SignJWT({}).setProtectedHeader({ alg: 'EdDSA', kid: who }).setIssuedAt(now).setExpirationTime(now + 60).sign(keys[who]!);
  const headers: Record<string, string> = { authorization: `Bearer ${jwt}` };
  if (body !== undefined) headers['content-type'] = typeof body === 'string' ? 'application/octet-stream' : 'application/json';
  return app.request(path, { method, headers, ...(body !== undefined ? { body: typeof body === 'string' ? body : JSON.stringify(body) } : {}) });
}
const json = async (r: Response): Promise<any> => r.json();
const b64 = (v: unknown): string => base64url.encode(typeof v === 'string' ? v : JSON.stringify(v));

/** EAR-shaped claims as a token would carry them. */
const ear = (status: string, pcr07 = 'aa'.repeat(32)) => ({
  iss: 'keyhold-kbs',
  submods: { cpu0: { 'ear.status': status, 'ear.veraison.annotated-evidence': { tpm: { pcr07 } } } },
});

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'keyhold-console-routes-'));
  store = await createEmbeddedStore({ backend: 'embedded', dir: join(dir, 'secrets') });
  const identities = [];
  for (const [name, role] of [
    ['root', 'admin'],
    ['alice', 'owner-a'],
    ['audrey', 'auditor'],
    ['tess', 'policy-tester'],
  ] as const) {
    const { privateKey, publicKey } = generateKeyPairSync('ed25519');
    keys[name] = privateKey;
    identities.push({ name, role, publicKeyPem: publicKey.export({ format: 'pem', type: 'spki' }).toString() });
  }
  // Owner a's ACL allows everything under its repository, and (to prove the routes' own checks) the
  // contract endpoints too: the repository limit must still hold there.
  const ownerA = { rules: [{ methods: ['*'], path: '/kbs/v0/(resource|resource-policy|resources)/.*' }], repositories: ['a'] };
  const engine = createPolicyEngine({ store: createMemoryPolicyStore() });
  state = await openMemoryState({ sessionLimits: { maxSessions: 100, maxSessionBytes: 1 << 20 } });
  deps = {
    state,
    sessionTtlMs: 60_000,
    signer: await EarSigner.create({ privateKey: generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey, issuer: 'keyhold-kbs', lifetimeMs: 60_000 }),
    appraisers: new Map(),
    attestationPolicy: celAttestationPolicy({ engine }),
    resourcePolicy: celResourcePolicy(engine),
    resources: kmsResourceStore(store),
    adminAuth: configuredAdminAuthorizer({ identities, roles: { ...DEFAULT_ADMIN_ROLES, 'owner-a': ownerA, 'policy-tester': { rules: [{ methods: ['POST'], path: '/kbs/v0/policy-test' }] } } }),
    logger: pino({ level: 'silent' }),
    maxBodyBytes: 1024 * 1024,
    build: 'test',
    owners: { policies: engine, audit: await createAuditLog({ sink: createMemoryAuditSink() }), metrics: createMetrics({ processMetrics: false }) },
  };
  app = createApp(deps);
  expect((await call('POST', '/kbs/v0/resource/a/key/1', 'root', SECRET)).status).toBe(200);
  for (const rule of ['true', 'ear.status == "affirming"', 'ear.status == "affirming" && resource_tag != "x"']) {
    expect((await call('POST', '/kbs/v0/resource-policy/a', 'alice', { policy: b64(rule) })).status).toBe(200);
  }
  expect((await call('POST', '/kbs/v0/resource-policy/b', 'root', { policy: b64('false') })).status).toBe(200);
  expect((await call('POST', '/kbs/v0/resource-policy', 'root', { policy: b64('false') })).status).toBe(200);
  await state.referenceValues.set({ tpm_pcr07: ['aa'.repeat(32)] });
});

afterAll(async () => {
  await state?.close();
  await store?.close();
  if (dir !== undefined) await rm(dir, { recursive: true, force: true });
});

describe('GET /kbs/v0/policy-versions', () => {
  it('lists a slot newest first with who stored each version', async () => {
    const r = await call('GET', '/kbs/v0/policy-versions?kind=resource&repository=a', 'root');
    expect(r.status).toBe(200);
    const { versions } = await json(r);
    expect(versions.map((v: any) => [v.version, v.updatedBy, v.document.rule])).toEqual([
      [3, 'alice', 'ear.status == "affirming" && resource_tag != "x"'],
      [2, 'alice', 'ear.status == "affirming"'],
      [1, 'alice', 'true'],
    ]);
    expect((await json(await call('GET', '/kbs/v0/policy-versions?kind=resource', 'root'))).versions).toHaveLength(1);
    expect((await json(await call('GET', '/kbs/v0/policy-versions?kind=attestation&id=default', 'root'))).versions).toEqual([]);
  });

  it('refuses malformed queries', async () => {
    for (const q of ['', 'kind=x', 'kind=attestation', 'kind=attestation&id=../x', 'kind=resource&repository=..%2Fb', 'kind=resource&id=a', 'kind=attestation&id=d&repository=a']) {
      const r = await call('GET', `/kbs/v0/policy-versions?${q}`, 'root');
      expect(r.status, q).toBe(400);
    }
  });

  it('a repository-limited owner reads its own history on the repository path, and nothing else', async () => {
    const own = await call('GET', '/kbs/v0/resource-policy/a/versions', 'alice');
    expect(own.status).toBe(200);
    expect((await json(own)).versions).toHaveLength(3);
    // Another repository, the global slot, the contract endpoint (names no repository): 403.
    expect((await call('GET', '/kbs/v0/resource-policy/b/versions', 'alice')).status).toBe(403);
    expect((await call('GET', '/kbs/v0/policy-versions?kind=resource&repository=a', 'alice')).status).toBe(403);
    expect((await call('GET', '/kbs/v0/policy-versions?kind=resource&repository=b', 'alice')).status).toBe(403);
    // An auditor may not read policies at all.
    expect((await call('GET', '/kbs/v0/policy-versions?kind=resource&repository=a', 'audrey')).status).toBe(403);
  });
});

describe('POST /kbs/v0/policy-test', () => {
  it('evaluates a resource policy against token claims with the KBS compiler, storing nothing', async () => {
    const policy = { id: 'p', type: 'cel', kind: 'resource', rule: 'ear.status == "affirming" && repository == "a"' };
    const allow = await call('POST', '/kbs/v0/policy-test', 'root', { policy, kind: 'resource', claims: ear('affirming'), resourcePath: 'a/key/1' });
    expect(allow.status).toBe(200);
    expect(await json(allow)).toMatchObject({ kind: 'resource', allow: true, policyId: 'p' });
    const deny = await json(await call('POST', '/kbs/v0/policy-test', 'root', { policy: 'ear.status == "affirming"', kind: 'resource', claims: ear('contraindicated'), resourcePath: 'a/key/1' }));
    expect(deny).toMatchObject({ allow: false, reason: 'policy rule evaluated to false' });
    const missing = await json(await call('POST', '/kbs/v0/policy-test', 'root', { policy: 'input.nope.x == 1', kind: 'resource', claims: {}, resourcePath: 'a/key/1' }));
    expect(missing).toMatchObject({ allow: false, reason: expect.stringMatching(/^policy rule failed/) });
    expect((await json(await call('GET', '/kbs/v0/policy-versions?kind=resource&repository=a', 'root'))).versions).toHaveLength(3);
  });

  it('evaluates an attestation policy against the verifier claims inside EAR claims and the KBS reference values', async () => {
    const policy = { id: 't', type: 'cel', kind: 'attestation', rules: { vector: { configuration: 'claims.tpm.pcr07 in reference.pcr07 ? 2 : 96' }, status: 'vector["configuration"] == 2 ? "affirming" : "contraindicated"' } };
    const good = await json(await call('POST', '/kbs/v0/policy-test', 'root', { policy: JSON.stringify(policy), kind: 'attestation', claims: ear('affirming') }));
    expect(good).toMatchObject({ kind: 'attestation', status: 'affirming', vector: { configuration: 2 } });
    const bad = await json(await call('POST', '/kbs/v0/policy-test', 'root', { policy, kind: 'attestation', claims: ear('affirming', 'bb'.repeat(32)) }));
    expect(bad).toMatchObject({ status: 'contraindicated', vector: { configuration: 96 } });
    const own = await json(await call('POST', '/kbs/v0/policy-test', 'root', { policy, kind: 'attestation', claims: { tpm: { pcr07: 'cc' } }, reference: { pcr07: ['cc'] } }));
    expect(own).toMatchObject({ status: 'affirming' });
    // A rule that cannot evaluate gives contraindicated with the reason, as at /attest.
    const broken = await json(await call('POST', '/kbs/v0/policy-test', 'root', { policy, kind: 'attestation', claims: { other: 1 } }));
    expect(broken).toMatchObject({ status: 'contraindicated', reason: expect.stringMatching(/failed to evaluate/) });
  });

  it('refuses a policy that does not compile (400 naming rule, line, column) and malformed requests', async () => {
    const r = await call('POST', '/kbs/v0/policy-test', 'root', { policy: 'ear.status ==', kind: 'resource', claims: {}, resourcePath: 'a/key/1' });
    expect(r.status).toBe(400);
    expect((await json(r)).detail).toMatch(/rule 1:\d+: syntax error/);
    const bodies: unknown[] = [
      { policy: 'true', kind: 'resource', claims: {} },
      { policy: 'true', kind: 'resource', claims: {}, resourcePath: '../etc/passwd' },
      { policy: 'true', kind: 'attestation', claims: {} },
      { policy: 'true', kind: 'other', claims: {}, resourcePath: 'a/k/1' },
      { policy: 'true', kind: 'resource', claims: [], resourcePath: 'a/k/1' },
      { policy: 'true', kind: 'resource', resourcePath: 'a/k/1' },
      { policy: 'true', kind: 'resource', claims: {}, resourcePath: 'a/k/1', extra: 1 },
      { policy: '{"id":"x","type":"rego","kind":"resource","rule":"true"}', kind: 'resource', claims: {}, resourcePath: 'a/k/1' },
    ];
    for (const b of bodies) expect((await call('POST', '/kbs/v0/policy-test', 'root', b)).status, JSON.stringify(b)).toBe(400);
    const text = await app.request('/kbs/v0/policy-test', { method: 'POST', body: '{}' });
    expect(text.status).toBe(401);
  });

  it('tests a resource policy against a node record: claims rebuilt from its last verdict, never evidence', async () => {
    const good = 'ab'.repeat(32);
    const banned = `ak:${'cd'.repeat(32)}`;
    const at = new Date().toISOString();
    await state.nodes.compareAndSwap(good, 0, { nodeId: good, akName: null, firstSeenAt: at, state: 'active', lastAttestedAt: at, lastVerdict: { status: 'affirming', policy: 'default@3', at } });
    await state.nodes.compareAndSwap(banned, 0, { nodeId: banned, akName: null, firstSeenAt: at, state: 'banned', banned: { at, reason: 'pcr07 does not match' }, lastVerdict: { status: 'contraindicated', policy: 'default@3', reason: 'pcr07 does not match', at } });
    const policy = 'ear.status == "affirming" && evidence.node_id == "' + good + '"';
    const ok = await json(await call('POST', '/kbs/v0/policy-test', 'root', { policy, kind: 'resource', node: good, resourcePath: 'a/key/1' }));
    expect(ok).toMatchObject({ allow: true, fromNode: { nodeId: good, state: 'active', verdict: { status: 'affirming', policy: 'default@3' } } });
    expect(ok.fromNode.claims).toEqual({ submods: { cpu0: { 'ear.status': 'affirming', 'ear.appraisal-policy-id': 'default', 'ear.veraison.annotated-evidence': { node_id: good, node_state: 'active', last_attested_age_s: expect.any(Number) } } } });
    // The freshness claims /resource adds are there too, so freshness rules can be tried.
    const fresh = await json(await call('POST', '/kbs/v0/policy-test', 'root', { policy: 'evidence.node_state == "active" && evidence.last_attested_age_s < 60', kind: 'resource', node: good, resourcePath: 'a/key/1' }));
    expect(fresh).toMatchObject({ allow: true });
    const no = await json(await call('POST', '/kbs/v0/policy-test', 'root', { policy: 'ear.status == "affirming"', kind: 'resource', node: banned, resourcePath: 'a/key/1' }));
    expect(no).toMatchObject({ allow: false, fromNode: { state: 'banned', note: expect.stringMatching(/refuses it before any resource policy/) } });
    // Unknown node 404; malformed id, claims and node together, attestation kind: 400.
    expect((await call('POST', '/kbs/v0/policy-test', 'root', { policy: 'true', kind: 'resource', node: 'ef'.repeat(32), resourcePath: 'a/k/1' })).status).toBe(404);
    for (const b of [
      { policy: 'true', kind: 'resource', node: '../../x', resourcePath: 'a/k/1' },
      { policy: 'true', kind: 'resource', node: good, claims: {}, resourcePath: 'a/k/1' },
      { policy: { rules: { status: '"affirming"' } }, kind: 'attestation', node: good },
    ]) {
      const r = await call('POST', '/kbs/v0/policy-test', 'root', b);
      expect(r.status, JSON.stringify(b)).toBe(400);
    }
    const att = await call('POST', '/kbs/v0/policy-test', 'root', { policy: { rules: { status: '"affirming"' } }, kind: 'attestation', node: good });
    expect((await json(att)).detail).toMatch(/does not keep per node/);
    // SECURITY: a role that may test policies but not read nodes gets no node verdicts through a test.
    const tess = await call('POST', '/kbs/v0/policy-test', 'tess', { policy: 'true', kind: 'resource', node: good, resourcePath: 'a/key/1' });
    expect(tess.status).toBe(403);
    expect((await call('POST', '/kbs/v0/policy-test', 'tess', { policy: 'true', kind: 'resource', claims: {}, resourcePath: 'a/key/1' })).status).toBe(200);
    // SECURITY: a repository-limited owner learns nothing about nodes through a test.
    const limited = await call('POST', '/kbs/v0/resource-policy/a/test', 'alice', { policy: 'true', kind: 'resource', node: good, resourcePath: 'a/key/1' });
    expect(limited.status).toBe(403);
    expect(await limited.text()).not.toContain('affirming');
  });

  it('a repository-limited owner tests only resource policies for its own paths', async () => {
    const ok = await call('POST', '/kbs/v0/resource-policy/a/test', 'alice', { policy: 'true', kind: 'resource', claims: ear('affirming'), resourcePath: 'a/key/1' });
    expect(ok.status).toBe(200);
    expect(await json(ok)).toMatchObject({ allow: true });
    expect((await call('POST', '/kbs/v0/resource-policy/a/test', 'alice', { policy: 'true', kind: 'resource', claims: {}, resourcePath: 'b/key/1' })).status).toBe(403);
    expect((await call('POST', '/kbs/v0/resource-policy/a/test', 'alice', { policy: { rules: { status: '"affirming"' } }, kind: 'attestation', claims: {} })).status).toBe(403);
    expect((await call('POST', '/kbs/v0/resource-policy/b/test', 'alice', { policy: 'true', kind: 'resource', claims: {}, resourcePath: 'b/key/1' })).status).toBe(403);
    expect((await call('POST', '/kbs/v0/policy-test', 'alice', { policy: 'true', kind: 'resource', claims: {}, resourcePath: 'a/key/1' })).status).toBe(403);
  });
});

describe('GET /kbs/v0/admin/health', () => {
  it('summarises storage, policies, audit, counters and protocol latency; never values', async () => {
    await app.request('/kbs/v0/auth', { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' });
    const r = await call('GET', '/kbs/v0/admin/health', 'root');
    expect(r.status).toBe(200);
    const text = await r.text();
    expect(text).not.toContain(SECRET);
    const h = JSON.parse(text);
    expect(h).toMatchObject({ build: 'test', state: { backend: 'embedded', ok: true }, storage: { backend: 'embedded', ok: true }, policies: { ok: true }, audit: { enabled: true, head: { seq: expect.any(Number) } } });
    expect(h.counters).toEqual({ attestations: 0, denials: 0, releases: 0 });
    expect(h.latencyBuckets.at(-1)).toEqual({ le: '+Inf', count: 1 });
    expect(typeof h.latencyMs.p99).toBe('number');
    expect((await call('GET', '/kbs/v0/admin/health', 'alice')).status).toBe(403);
    expect((await call('GET', '/kbs/v0/admin/health', 'audrey')).status).toBe(403);
  });

  it('reports a state backend that does not answer as not ok (the summary itself still answers)', async () => {
    const ping = state.ping;
    state.ping = () => Promise.reject(Object.assign(new Error('down'), { code: 'STATE_UNAVAILABLE' }));
    try {
      const r = await call('GET', '/kbs/v0/admin/health', 'root');
      expect(r.status).toBe(200);
      expect((await json(r)).state).toEqual({ backend: 'embedded', ok: false });
    } finally {
      state.ping = ping;
    }
  });
});
