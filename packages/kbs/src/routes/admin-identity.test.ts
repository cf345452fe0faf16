import { execFile } from 'node:child_process';
import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { SignJWT } from 'jose';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fitReportData, runtimeDataDigest, type TeePubkey } from '@keyhold/protocol';
import { createSoftwareTpm, generateTeeKeyPair, IdentityContributor, loadOrCreateAk, TpmAttester } from '@keyhold/attestation-agent';
import { ekHash, parseTpm2bPublic, tpmPublicToSpkiDer } from '@keyhold/verifier';
import { singleKeyAdminAuthorizer } from '../admin/single-key-authorizer.js';
import type { KbsDeps } from '../app-env.js';
import { createApp } from '../app.js';
import { defaultAttestationPolicy } from '../attestation/attestation-policy.js';
import { IdentityExtension } from '../attestation/tpm/identity-extension.js';
import { TpmAppraiser } from '../attestation/tpm/tpm-appraiser.js';
import { affirmingResourcePolicy } from '../release/resource-policy.js';
import type { ResourceStore } from '../release/resource-store.js';
import { openEmbeddedState } from '../state/index.js';
import type { KbsState } from '../state/ports.js';
import { EarSigner } from '../token/ear-signer.js';

const run = promisify(execFile);
const SECRET = new TextEncoder().encode('admin-identity-test-secret');

let dir: string;
let adminKey: KeyObject;
let deps: KbsDeps;
/** The embedded state in a temp data dir (files, lock), as `keyhold-kbs` runs it. */
let state: KbsState;
let app: ReturnType<typeof createApp>;

async function adminToken(key: KeyObject = adminKey): Promise<string> {
  return new SignJWT({ role: 'admin' }).setProtectedHeader({ alg: 'EdDSA' }).setExpirationTime('5m').sign(key);
}

async function call(method: string, p: string, o: { body?: string | Uint8Array; type?: string; token?: string | null; cookie?: string } = {}) {
  const headers: Record<string, string> = {};
  const token = o.token === undefined ? await adminToken() : o.token;
  if (token !== null) headers['authorization'] = `Bearer ${token}`;
  if (o.type !== undefined) headers['content-type'] = o.type;
  if (o.cookie !== undefined) headers['cookie'] = `kbs-session-id=${o.cookie}`;
  const res = await app.request(p, { method, headers, ...(o.body !== undefined ? { body: o.body } : {}) });
  const text = await res.text();
  return { status: res.status, json: text === '' ? undefined : (JSON.parse(text) as Record<string, any>) };
}

const variant = (r: { json?: Record<string, any> }) => String(r.json?.['type'] ?? '').split('/').pop();

beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'keyhold-admin-identity-'));
  const admin = generateKeyPairSync('ed25519');
  adminKey = admin.privateKey;
  state = await openEmbeddedState({ dataDir: path.join(dir, 'data'), sessionLimits: { maxSessions: 100, maxSessionBytes: 1 << 20 }, auditFile: null });
  const ext = new IdentityExtension({
    ekCa: state.ekCa,
    ekAllowlist: state.ekAllowlist,
    nodes: state.nodes,
    requireEkCertificate: false,
    requireEkAllowlist: false,
    trustedAkList: false,
    trustDomain: 'example.org',
  });
  const tpm = new TpmAppraiser({ trustedAkList: false, extensions: [ext] });
  const resources: ResourceStore = {
    get: async () => SECRET,
    put: async () => ({ version: 1 }),
    delete: async () => true,
    generate: async () => ({ version: 1 }),
    rotate: async () => ({ version: 2 }),
  };
  deps = {
    state,
    sessionTtlMs: 60_000,
    signer: await EarSigner.create({ privateKey: generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey, issuer: 'test', lifetimeMs: 60_000 }),
    appraisers: new Map([[tpm.tee, tpm]]),
    attestationPolicy: defaultAttestationPolicy,
    resourcePolicy: affirmingResourcePolicy,
    resources,
    adminAuth: singleKeyAdminAuthorizer(admin.publicKey),
    logger: pino({ level: 'silent' }),
    maxBodyBytes: 1024 * 1024,
    build: 'test',
  };
  app = createApp(deps);
});

afterAll(async () => {
  await state?.close();
  await rm(dir, { recursive: true, force: true });
});

describe('EK allowlist endpoints', () => {
  const h = 'AB'.repeat(32);
  it('adds, lists and removes entries; 404 for an entry not listed', async () => {
    expect(await call('POST', '/kbs/v0/admin/ek-allowlist', { type: 'application/json', body: JSON.stringify({ ekHash: h, note: 'rack 4' }) })).toEqual({ status: 200, json: { ekHash: h.toLowerCase() } });
    expect((await call('GET', '/kbs/v0/admin/ek-allowlist')).json).toEqual({ ekHashes: [h.toLowerCase()], entries: [{ ekHash: h.toLowerCase(), note: 'rack 4', addedAt: expect.any(String) }] });
    expect((await call('DELETE', `/kbs/v0/admin/ek-allowlist/${h}`)).status).toBe(204);
    const again = await call('DELETE', `/kbs/v0/admin/ek-allowlist/${h}`);
    expect({ status: again.status, v: variant(again) }).toEqual({ status: 404, v: 'ResourceNotFound' });
    expect((await call('GET', '/kbs/v0/admin/ek-allowlist')).json).toEqual({ ekHashes: [], entries: [] });
  });

  it('refuses malformed hashes (path traversal), bodies and callers without the admin key', async () => {
    for (const body of [{ ekHash: '../../etc/passwd' }, { ekHash: 'ab'.repeat(31) }, { ekHash: h, extra: 1 }]) {
      const r = await call('POST', '/kbs/v0/admin/ek-allowlist', { type: 'application/json', body: JSON.stringify(body) });
      expect({ status: r.status, v: variant(r) }).toEqual({ status: 400, v: 'InvalidRequest' });
    }
    expect((await call('DELETE', '/kbs/v0/admin/ek-allowlist/..%2F..%2Fx')).status).toBe(400);
    const noAuth = await call('POST', '/kbs/v0/admin/ek-allowlist', { token: null, type: 'application/json', body: JSON.stringify({ ekHash: h }) });
    expect({ status: noAuth.status, v: variant(noAuth) }).toEqual({ status: 401, v: 'AdminAuthAccess' });
    const forged = await call('GET', '/kbs/v0/admin/nodes', { token: await adminToken(generateKeyPairSync('ed25519').privateKey) });
    expect(forged.status).toBe(401);
    expect(await state.ekAllowlist.list()).toEqual([]);
  });
});

describe('EK CA endpoints', () => {
  it('adds PEM certificates, lists them, and refuses non-certificates and wrong media types', async () => {
    const key = path.join(dir, 'ca.key');
    const pem = path.join(dir, 'ca.pem');
    await run('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', key, '-out', pem, '-subj', '/CN=Admin Test CA', '-days', '2',
      '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign']);
    const added = await call('POST', '/kbs/v0/admin/ek-ca', { type: 'application/octet-stream', body: await readFile(pem) });
    expect(added.status).toBe(200);
    expect(added.json?.['added']).toEqual([expect.objectContaining({ subject: 'CN=Admin Test CA' })]);
    expect((await call('GET', '/kbs/v0/admin/ek-ca')).json?.['certificates']).toEqual([expect.objectContaining({ subject: 'CN=Admin Test CA' })]);
    const junk = await call('POST', '/kbs/v0/admin/ek-ca', { type: 'application/octet-stream', body: new TextEncoder().encode('not a certificate') });
    expect({ status: junk.status, v: variant(junk) }).toEqual({ status: 400, v: 'InvalidRequest' });
    const asJson = await call('POST', '/kbs/v0/admin/ek-ca', { type: 'application/json', body: '{}' });
    expect(asJson.status).toBe(415);
    expect((await call('GET', '/kbs/v0/admin/ek-ca')).json?.['certificates']).toHaveLength(1);
    // Idempotent per certificate; removable by its SHA-256.
    const twice = await call('POST', '/kbs/v0/admin/ek-ca', { type: 'application/octet-stream', body: await readFile(pem) });
    expect({ added: twice.json?.['added'], present: twice.json?.['alreadyPresent'] }).toEqual({ added: [], present: [expect.objectContaining({ subject: 'CN=Admin Test CA' })] });
    const sha = (added.json?.['added'] as { sha256: string }[])[0]!.sha256;
    for (const bad of ['..%2F..%2Fx', 'zz'.repeat(32), 'ab']) expect((await call('DELETE', `/kbs/v0/admin/ek-ca/${bad}`)).status).toBe(400);
    expect((await call('DELETE', `/kbs/v0/admin/ek-ca/${sha}`)).status).toBe(204);
    expect((await call('DELETE', `/kbs/v0/admin/ek-ca/${sha}`)).status).toBe(404);
    expect((await call('GET', '/kbs/v0/admin/ek-ca')).json?.['certificates']).toEqual([]);
  });
});

describe('nodes: enrolment through the handshake, revocation through the admin API', () => {
  it('an allowlisted node enrols; after revocation its bearer token and its session release nothing', async () => {
    const tpm = createSoftwareTpm();
    const { ak } = await loadOrCreateAk(tpm, { persistentHandle: 0x81010002, persist: true });
    const contributor = new IdentityContributor({ tpm, ak });
    const attester = new TpmAttester(tpm, ak, [contributor]);
    const id = await contributor.identity();
    const node = ekHash(tpmPublicToSpkiDer(parseTpm2bPublic(Buffer.from(id.ek_tpm2b_public, 'base64'))));

    const handshake = async () => {
      const a = await app.request('/kbs/v0/auth', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ version: '0.4.0', tee: 'tpm', 'extra-params': await attester.requestExtraParams() }) });
      const cookie = /kbs-session-id=([^;]+)/.exec(a.headers.get('set-cookie') ?? '')?.[1];
      const ch = (await a.json()) as { nonce: string; 'extra-params': unknown; detail?: string };
      if (a.status !== 200) return { status: a.status, detail: ch.detail, cookie: undefined, token: undefined };
      const teeKey = await generateTeeKeyPair('ec');
      const digest = runtimeDataDigest({ nonce: ch.nonce, teePubkey: teeKey.publicJwk as TeePubkey, additionalEvidence: '' });
      const challengeExtra = typeof ch['extra-params'] === 'object' ? (ch['extra-params'] as Record<string, unknown>) : {};
      const { primary } = await attester.evidence({ nonce: ch.nonce, teePubkey: teeKey.publicJwk as TeePubkey, reportData: fitReportData(digest, 32), hashAlgorithm: 'sha384', challengeExtra });
      const t = await app.request('/kbs/v0/attest', {
        method: 'POST',
        headers: { 'content-type': 'application/json', cookie: `kbs-session-id=${cookie}` },
        body: JSON.stringify({ 'runtime-data': { nonce: ch.nonce, 'tee-pubkey': teeKey.publicJwk }, 'tee-evidence': { primary_evidence: primary, additional_evidence: '' } }),
      });
      const body = (await t.json()) as { token?: string; detail?: string };
      return { status: t.status, detail: body.detail, cookie, token: body.token };
    };

    // Not yet allowed by the owner: refused, nothing enrolled.
    const refused = await handshake();
    expect(refused.status).toBe(401);
    expect(refused.detail).toMatch(/^EK_UNTRUSTED/);
    expect((await call('GET', '/kbs/v0/admin/nodes')).json).toEqual({ nodes: [] });

    await call('POST', '/kbs/v0/admin/ek-allowlist', { type: 'application/json', body: JSON.stringify({ ekHash: node }) });
    const ok = await handshake();
    expect(ok.status).toBe(200);
    const res = await call('GET', '/kbs/v0/resource/default/key/x', { token: ok.token! });
    expect(res.status).toBe(200);
    const nodes = (await call('GET', '/kbs/v0/admin/nodes')).json?.['nodes'] as { nodeId: string; akName: string; revoked: boolean; ekTrust: string }[];
    expect(nodes).toEqual([expect.objectContaining({ nodeId: node, akName: Buffer.from(ak.name).toString('hex'), revoked: false, ekTrust: 'allowlist' })]);

    const revoked = await call('POST', `/kbs/v0/admin/nodes/${node}/revoke`);
    expect(revoked.json).toMatchObject({ nodeId: node, revoked: true });
    for (const auth of [{ token: ok.token! }, { token: null, cookie: ok.cookie! }]) {
      const r = await call('GET', '/kbs/v0/resource/default/key/x', auth);
      expect({ status: r.status, v: variant(r) }).toEqual({ status: 403, v: 'NodeRevoked' });
      expect(JSON.stringify(r.json)).not.toContain('admin-identity-test-secret');
    }
    const again = await handshake();
    expect(again.status).toBe(403);

    // The owner re-admits the node by removing its record: it must activate again.
    expect((await call('DELETE', `/kbs/v0/admin/nodes/${node}`)).status).toBe(204);
    expect((await call('DELETE', `/kbs/v0/admin/nodes/${node}`)).status).toBe(404);
    expect((await handshake()).status).toBe(200);
    expect((await call('POST', '/kbs/v0/admin/nodes/not-a-hash/revoke')).status).toBe(400);
  });

  it('lists node records by page and state, and refuses malformed list parameters', async () => {
    const ids = ['1', '2', '3'].map((c) => c.repeat(64));
    for (const id of ids) expect((await call('POST', `/kbs/v0/admin/nodes/${id}/revoke`)).status).toBe(200);
    const first = (await call('GET', '/kbs/v0/admin/nodes?state=revoked&limit=2')).json as { nodes: { nodeId: string; state: string }[]; next?: string };
    expect(first.nodes.map((n) => n.nodeId)).toEqual(ids.slice(0, 2));
    expect(first.nodes.every((n) => n.state === 'revoked')).toBe(true);
    const rest = (await call('GET', `/kbs/v0/admin/nodes?state=revoked&limit=2&after=${first.next}`)).json as { nodes: { nodeId: string }[] };
    expect(rest.nodes.map((n) => n.nodeId)).toContain(ids[2]);
    for (const q of ['state=gone', 'limit=0', 'limit=x', 'after=..%2F', `after=${'g'.repeat(64)}`]) {
      expect((await call('GET', `/kbs/v0/admin/nodes?${q}`)).status, q).toBe(400);
    }
    for (const id of ids) expect((await call('DELETE', `/kbs/v0/admin/nodes/${id}`)).status).toBe(204);
  });
});
