/**
 * Issue 13 across replicas: two `keyhold-kbs` processes on one Redis (`[state] backend = "redis"`,
 * one token signing key file, secrets in the same Redis). A node trusted through `trusted_ak`
 * (the agent library's software TPM: this test is about the KBS side) is banned by an appraisal
 * on replica A; replica B enforces the ban on the very next request (its earlier token, a new
 * attestation, a node certificate), sees the ban in the node record and the event log; a local
 * webhook receiver gets one signed `node.banned` although both replicas run a notifier; an unban
 * through B lets the node recover through A. Node certificates from either replica chain to the one
 * node CA both serve. The daemon on swtpm is covered by the agent's own e2e.
 */
import { createHash, generateKeyPairSync, webcrypto } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import 'reflect-metadata';
import { Pkcs10CertificateRequestGenerator } from '@peculiar/x509';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createSoftwareTpm, loadOrCreateAk, tpm2bPublicToSpkiDer, type TpmDevice, type TpmKey } from '@keyhold/attestation-agent';
import { fitReportData, runtimeDataDigest, TPM_REPORT_DATA_BYTES, type TeePubkey } from '@keyhold/protocol';
import { collectTpmEvidence, generateTeeKeyPair } from '@keyhold/attestation-agent';
import { verifyWebhookSignature } from '@keyhold/kbs';
import { startRedis, type RedisServer } from '@keyhold/test-harness';
import { createAdminKeys, type AdminKeys } from './harness/admin-keys.js';
import { startKbsProcess, type KbsProcess } from './harness/kbs-process.js';
import { attest, auth, buildAttestation, getResource, http, variantOf, type HttpAnswer } from './harness/raw-flow.js';

const run = promisify(execFile);
const SECRET = 'continuous-replicas-secret-77c1';
const SECRET_PATH = 'default/key/cont';
const HOOK_SECRET = 'webhook-secret-for-the-replicas-test';

let dir: string;
let redis: RedisServer;
let admin: AdminKeys;
let adminHeaders: Record<string, string>;
const replicas: KbsProcess[] = [];
let node: { tpm: TpmDevice; ak: TpmKey; nodeId: string };
let hook: { server: Server; received: { id: string; type: string; body: string; verified: boolean }[] };

const A = (): string => replicas[0]!.url;
const B = (): string => replicas[1]!.url;

async function adminPost(base: string, path: string, body: string | Uint8Array, type = 'application/json'): Promise<HttpAnswer> {
  return http(`${base}${path}`, { method: 'POST', headers: { ...adminHeaders, 'content-type': type }, body });
}

const rvBody = (values: Record<string, string[]>): string => JSON.stringify({ version: '0.1.0', type: 'sample', payload: Buffer.from(JSON.stringify(values)).toString('base64') });

/** auth + attest on one replica, optionally binding a node key (additional evidence). */
async function attestOn(kbs: string, additionalEvidence = ''): Promise<HttpAnswer & { cookie: string }> {
  const s = await auth(kbs);
  if (additionalEvidence === '') return { ...(await attest(kbs, s.cookie, (await buildAttestation(node.tpm, node.ak, s.nonce)).body)), cookie: s.cookie };
  const teeKey = await generateTeeKeyPair('ec');
  const digest = runtimeDataDigest({ nonce: s.nonce, teePubkey: teeKey.publicJwk as TeePubkey, additionalEvidence });
  const evidence = await collectTpmEvidence(node.tpm, node.ak, fitReportData(digest, TPM_REPORT_DATA_BYTES));
  const body = { 'runtime-data': { nonce: s.nonce, 'tee-pubkey': teeKey.publicJwk }, 'tee-evidence': { primary_evidence: evidence, additional_evidence: additionalEvidence } };
  return { ...(await attest(kbs, s.cookie, body)), cookie: s.cookie };
}

const tokenOf = (a: HttpAnswer): string => (a.json as { token: string }).token;

async function until<T>(fn: () => Promise<T | undefined> | T | undefined, timeoutMs = 15_000): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > end) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 100));
  }
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'keyhold-e2e-continuous-'));
  redis = await startRedis({});
  admin = await createAdminKeys(dir);
  adminHeaders = { authorization: `Bearer ${await admin.token({ lifetimeS: 900 })}` };
  hook = { server: createServer(), received: [] };
  hook.server.on('request', (req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      hook.received.push({ id: String(req.headers['keyhold-event-id']), type: String(req.headers['keyhold-event-type']), body, verified: verifyWebhookSignature(Buffer.from(HOOK_SECRET), body, req.headers['keyhold-signature'] as string, Math.floor(Date.now() / 1000)) });
      res.writeHead(204).end();
    });
  });
  await new Promise<void>((r) => hook.server.listen(0, '127.0.0.1', r));
  const hookPort = (hook.server.address() as AddressInfo).port;
  const signingKey = join(dir, 'token-signing-key.pem');
  await writeFile(signingKey, generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ format: 'pem', type: 'pkcs8' }), { mode: 0o600 });
  await writeFile(join(dir, 'hook.secret'), `${HOOK_SECRET}\n`, { mode: 0o600 });
  const configToml = [
    `token_signing_key = "${signingKey}"`,
    '[storage]',
    'backend = "redis"',
    `url = "${redis.url}"`,
    `master_key_file = "${join(dir, 'redis-master.key')}"`,
    '[state]',
    'backend = "redis"',
    '[tpm]',
    'trust_domain = "replicas.test"',
    '[continuous]',
    'interval = "2s"',
    'sweep_interval = "1s"',
    '[[notify.webhook]]',
    `url = "http://127.0.0.1:${hookPort}/keyhold"`,
    `secret_file = "${join(dir, 'hook.secret')}"`,
    '[rate_limit]',
    'auth_per_sec = 100000',
    'auth_burst = 100000',
    'admin_per_sec = 100000',
    'admin_burst = 100000',
    '',
  ].join('\n');
  for (let i = 0; i < 2; i++) {
    const dataDir = join(dir, `replica-${i}`, 'data');
    await mkdir(dataDir, { recursive: true });
    replicas.push(await startKbsProcess({ dataDir, adminPublicKeyFile: admin.publicKeyFile, configToml }));
  }
  const tpm = createSoftwareTpm();
  const { ak } = await loadOrCreateAk(tpm, { persistentHandle: 0x81010002, persist: true });
  const spki = Buffer.from(tpm2bPublicToSpkiDer(ak.publicArea));
  node = { tpm, ak, nodeId: `ak:${createHash('sha256').update(spki).digest('hex')}` };
  expect((await adminPost(A(), '/kbs/v0/reference-value', rvBody({ trusted_ak: [spki.toString('base64')] }))).status).toBe(200);
  expect((await adminPost(B(), `/kbs/v0/resource/${SECRET_PATH}`, SECRET, 'application/octet-stream')).status).toBe(200);
}, 120_000);

afterAll(async () => {
  await Promise.all(replicas.map((r) => r.stop()));
  await redis?.stop();
  await node?.tpm.close();
  if (hook !== undefined) await new Promise((r) => hook.server.close(r));
  if (dir !== undefined) await rm(dir, { recursive: true, force: true });
});

describe('continuous attestation on two replicas sharing Redis', () => {
  it('a ban through A is enforced by B on the next request; B sees it in the record and the events; one signed webhook delivery', async () => {
    const good = await attestOn(A());
    expect(good.status, good.text).toBe(200);
    // The release is a JWE to the tee key (decrypting it is the release tests' business).
    expect((await getResource(B(), SECRET_PATH, { bearer: tokenOf(good) })).status).toBe(200);

    // The owner pins PCR 7 to a value this TPM does not hold: A's next appraisal bans the node.
    expect((await adminPost(B(), '/kbs/v0/reference-value', rvBody({ tpm_pcr07: ['ff'.repeat(32)] }))).status).toBe(200);
    const banned = await attestOn(A());
    expect({ status: banned.status, v: variantOf(banned) }).toEqual({ status: 403, v: 'NodeBanned' });
    expect(banned.text).toMatch(/pcr07/);

    // B, on the very next requests: the earlier token and session, a new attestation.
    for (const a of [{ bearer: tokenOf(good) }, { cookie: good.cookie }]) {
      const r = await getResource(B(), SECRET_PATH, a);
      expect({ status: r.status, v: variantOf(r) }).toEqual({ status: 403, v: 'NodeBanned' });
      expect(r.text).not.toContain('"ciphertext"');
    }
    expect((await http(`${B()}/kbs/v0/reference-value/tpm_pcr07`, { method: 'DELETE', headers: adminHeaders })).status).toBe(204);
    const onB = await attestOn(B());
    expect({ status: onB.status, v: variantOf(onB) }).toEqual({ status: 403, v: 'NodeBanned' });

    const rec = (await http(`${B()}/kbs/v0/admin/nodes/${node.nodeId}`, { headers: adminHeaders })).json as { node: Record<string, any>; history: { kind: string; status?: string }[] };
    expect(rec.node).toMatchObject({ nodeId: node.nodeId, state: 'banned', banned: { reason: expect.stringMatching(/pcr07/) }, spiffeId: `spiffe://replicas.test/keyhold/node/ak/${node.nodeId.slice(3)}` });
    expect(rec.history.some((h) => h.kind === 'attest' && h.status === 'contraindicated')).toBe(true);
    const events = (await http(`${B()}/kbs/v0/admin/events?format=json&limit=1000`, { headers: adminHeaders })).json as { events: { type: string; node?: string; replica?: string }[] };
    const ban = events.events.find((e) => e.type === 'node.banned');
    expect(ban).toMatchObject({ node: node.nodeId, replica: expect.stringMatching(new RegExp(`/${replicas[0]!.proc.pid}$`)) });

    // Both replicas run a notifier; the lease lets one deliver: exactly one signed node.banned.
    await until(() => hook.received.some((h) => h.type === 'node.banned'));
    await new Promise((r) => setTimeout(r, 1500));
    const delivered = hook.received.filter((h) => h.type === 'node.banned');
    expect(delivered).toHaveLength(1);
    expect(delivered[0]!.verified).toBe(true);
    expect(JSON.parse(delivered[0]!.body)).toMatchObject({ type: 'node.banned', node: node.nodeId });

    // The owner lifts the ban through B (audited); the node recovers through A.
    const unban = await adminPost(B(), `/kbs/v0/admin/nodes/${node.nodeId}/unban`, '{}');
    expect(unban.json).toMatchObject({ state: 'active' });
    const back = await attestOn(A());
    expect(back.status, back.text).toBe(200);
    expect((await getResource(B(), SECRET_PATH, { bearer: tokenOf(back) })).status).toBe(200);
    await until(() => hook.received.some((h) => h.type === 'node.recovered'));
    expect(hook.received.filter((h) => h.type === 'node.unbanned')).toHaveLength(1);
    expect(hook.received.every((h) => h.verified)).toBe(true);
  }, 60_000);

  it('node certificates from either replica chain to the one node CA; the stream of events is readable over HTTP', async () => {
    const keys = (await webcrypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
    const spkiSha = createHash('sha256').update(Buffer.from(await webcrypto.subtle.exportKey('spki', keys.publicKey))).digest('hex');
    type P = Parameters<typeof Pkcs10CertificateRequestGenerator.create>;
    const csr = await Pkcs10CertificateRequestGenerator.create({ name: 'CN=node', keys: keys as unknown as P[0]['keys'], signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' } as P[0]['signingAlgorithm'] }, webcrypto as unknown as P[1]);
    const a = await attestOn(A(), JSON.stringify({ 'keyhold.node-key': { 'spki-sha256': spkiSha } }));
    expect(a.status, a.text).toBe(200);
    const caA = (await http(`${A()}/kbs/v0/node-ca`)).text;
    expect((await http(`${B()}/kbs/v0/node-ca`)).text).toBe(caA);
    await writeFile(join(dir, 'ca.pem'), caA);
    for (const [i, base] of [A(), B()].entries()) {
      const r = await http(`${base}/kbs/v0/node-certificate`, { method: 'POST', headers: { authorization: `Bearer ${tokenOf(a)}`, 'content-type': 'application/json' }, body: JSON.stringify({ csr: csr.toString('pem') }) });
      expect(r.status, r.text).toBe(200);
      const leaf = join(dir, `leaf-${i}.pem`);
      await writeFile(leaf, (r.json as { certificate: string }).certificate);
      expect((await run('openssl', ['verify', '-CAfile', join(dir, 'ca.pem'), leaf])).stdout).toMatch(/OK/);
    }
    // The SSE form over real HTTP: replay after an id, then the stream stays open (read a bit, close).
    const list = (await http(`${B()}/kbs/v0/admin/events?format=json&limit=3`, { headers: adminHeaders })).json as { events: { id: string }[] };
    const res = await fetch(`${A()}/kbs/v0/admin/events?after=${list.events[0]!.id}`, { headers: { ...adminHeaders, accept: 'text/event-stream' } });
    expect(res.headers.get('content-type')).toMatch(/text\/event-stream/);
    const reader = res.body!.getReader();
    let text = '';
    while ((text.match(/\nevent: /g) ?? []).length < 2) text += new TextDecoder().decode((await reader.read()).value);
    await reader.cancel();
    expect(text).toContain(`id: ${list.events[1]!.id}\nevent: `);
  }, 60_000);
});
