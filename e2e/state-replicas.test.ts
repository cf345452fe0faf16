/**
 * Issue 10 end to end: three `keyhold-kbs` processes on one 3-master Redis Cluster (`[state]
 * backend = "redis"`, secrets in the same cluster, one token signing key file) form one KBS behind
 * a per-request round-robin balancer written in the test (no stickiness). Flows are split across
 * replicas step by step (auth on A, attest on B, resource on C), refusals and replays are sent to
 * different replicas, a revocation through A applies on B and C at once, concurrent admin writes
 * spread over the replicas all survive (and a restart), and one replica is SIGKILLed under load.
 * Attestation uses the agent library's attester over its software TPM (this test is about state),
 * plus one run of the real `keyhold-agent` on swtpm through the balancer.
 */
import { generateKeyPairSync } from 'node:crypto';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { decodeJwt } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createSoftwareTpm, IdentityContributor, KbsClient, loadOrCreateAk, TpmAttester, tpm2bPublicToSpkiDer, type TpmDevice, type TpmKey } from '@keyhold/attestation-agent';
import { parseResourcePath } from '@keyhold/protocol';
import { startRedisCluster, startSwtpm, type RedisCluster, type RunningSwtpm } from '@keyhold/test-harness';
import { checkAdminRaces, runAdminRaces } from './harness/admin-races.js';
import { createAdminKeys, type AdminKeys } from './harness/admin-keys.js';
import { startBalancer, type Balancer } from './harness/balancer.js';
import { swtpmLocalCaFiles } from './harness/hardware-identity.js';
import { startKbsProcess, type KbsProcess } from './harness/kbs-process.js';
import { attest, auth, buildAttestation, getResource, http, variantOf } from './harness/raw-flow.js';
import { AGENT_BIN, CLI_BIN } from './harness/repo.js';
import { runNodeCli } from './harness/run-cli.js';
import { backendOf, splitFlow } from './harness/split-flow.js';

const SECRET = 'replicated-kbs-secret-4be1c9';
const SECRET_PATH = 'default/key/replicas';

let dir: string;
let cluster: RedisCluster;
let admin: AdminKeys;
let adminHeaders: Record<string, string>;
let tokenFile: string;
let configToml: string;
const replicas: KbsProcess[] = [];
let balancer: Balancer;
/** A node the owner trusts by its AK (Trustee's `trusted_ak` path). */
let listed: { tpm: TpmDevice; ak: TpmKey; attester: TpmAttester };
/** A node with hardware identity (EK allowlisted, credential activation). */
let idNode: { tpm: TpmDevice; attester: TpmAttester; ekHash: string };

const url = (i: number): string => replicas[i]!.url;

async function startReplica(i: number, port?: number): Promise<KbsProcess> {
  const dataDir = join(dir, `replica-${i}`, 'data');
  await mkdir(dataDir, { recursive: true });
  return startKbsProcess({ dataDir, adminPublicKeyFile: admin.publicKeyFile, configToml, ...(port !== undefined ? { port } : {}) });
}

async function adminPost(base: string, path: string, body: string | Uint8Array, type = 'application/json') {
  return http(`${base}${path}`, { method: 'POST', headers: { ...adminHeaders, 'content-type': type }, body });
}

function rvBody(values: Record<string, string[]>): string {
  return JSON.stringify({ version: '0.1.0', type: 'sample', payload: Buffer.from(JSON.stringify(values)).toString('base64') });
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'keyhold-e2e-replicas-'));
  cluster = await startRedisCluster({ masters: 3 });
  admin = await createAdminKeys(dir);
  adminHeaders = { authorization: `Bearer ${await admin.token({ lifetimeS: 900 })}` };
  tokenFile = join(dir, 'admin.jwt');
  await writeFile(tokenFile, await admin.token({ lifetimeS: 900 }));
  // Replicas on different hosts would get this file from the owner's secret distribution.
  const signingKey = join(dir, 'token-signing-key.pem');
  await writeFile(signingKey, generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ format: 'pem', type: 'pkcs8' }), { mode: 0o600 });
  const nodes = cluster.nodes.map((n) => `"${n.host}:${n.port}"`).join(', ');
  configToml = [
    `token_signing_key = "${signingKey}"`,
    '[storage]',
    'backend = "redis"',
    `cluster_nodes = [${nodes}]`,
    `master_key_file = "${join(dir, 'redis-master.key')}"`,
    'operation_timeout_ms = 2000',
    '[state]',
    'backend = "redis"',
    '[rate_limit]',
    // Every client here shares one loopback address.
    'auth_per_sec = 100000',
    'auth_burst = 100000',
    'admin_per_sec = 100000',
    'admin_burst = 100000',
    // A contraindicated appraisal here yields a token and a 403 at release (Trustee's behaviour);
    // bans across replicas are e2e/continuous-replicas.test.ts's subject.
    '[continuous]',
    'ban_on_failure = false',
    '',
  ].join('\n');
  for (let i = 0; i < 3; i++) replicas.push(await startReplica(i));
  balancer = await startBalancer(replicas.map((r) => r.url));

  const tpmA = createSoftwareTpm();
  const { ak } = await loadOrCreateAk(tpmA, { persistentHandle: 0x81010002, persist: true });
  listed = { tpm: tpmA, ak, attester: new TpmAttester(tpmA, ak, []) };
  const tpmB = createSoftwareTpm();
  const idAk = (await loadOrCreateAk(tpmB, { persistentHandle: 0x81010002, persist: true })).ak;
  const contributor = new IdentityContributor({ tpm: tpmB, ak: idAk });
  const id = await contributor.identity();
  const { parseTpm2bPublic, tpmPublicToSpkiDer, ekHash } = await import('@keyhold/verifier');
  idNode = { tpm: tpmB, attester: new TpmAttester(tpmB, idAk, [contributor]), ekHash: ekHash(tpmPublicToSpkiDer(parseTpm2bPublic(Buffer.from(id.ek_tpm2b_public, 'base64')))) };

  // Owner setup, each call on another replica.
  const trustedAk = Buffer.from(tpm2bPublicToSpkiDer(ak.publicArea)).toString('base64');
  expect((await adminPost(url(0), '/kbs/v0/reference-value', rvBody({ trusted_ak: [trustedAk] }))).status).toBe(200);
  expect((await adminPost(url(1), `/kbs/v0/resource/${SECRET_PATH}`, SECRET, 'application/octet-stream')).status).toBe(200);
  expect((await adminPost(url(2), '/kbs/v0/admin/ek-allowlist', JSON.stringify({ ekHash: idNode.ekHash }))).status).toBe(200);
}, 120_000);

afterAll(async () => {
  await balancer?.close();
  await Promise.all(replicas.map((r) => r.stop()));
  await cluster?.stop();
  await listed?.tpm.close();
  await idNode?.tpm.close();
  if (dir !== undefined) await rm(dir, { recursive: true, force: true });
});

describe('any request of a flow on any replica', () => {
  it('Trustee flow: auth on A, attest on B, resource on C (cookie), and rotated (bearer token)', async () => {
    const abc = await splitFlow({ auth: url(0), attest: url(1), resource: url(2) }, listed.attester, SECRET_PATH);
    expect(abc.failedAt, abc.attest?.text ?? abc.auth.text).toBeUndefined();
    expect(abc.secret).toBe(SECRET);
    const cab = await splitFlow({ auth: url(2), attest: url(0), resource: url(1) }, listed.attester, SECRET_PATH, { useBearer: true });
    expect(cab.secret).toBe(SECRET);
    // The token one replica signed verifies on every other one (one shared signing key).
    for (let i = 0; i < 3; i++) expect((await getResource(url(i), SECRET_PATH, { bearer: cab.token! })).status).toBe(200);
  });

  it('through the round-robin balancer every flow spreads over three replicas; the agent library client works unchanged', async () => {
    for (let n = 0; n < 6; n++) {
      const f = await splitFlow({ auth: balancer.url, attest: balancer.url, resource: balancer.url }, listed.attester, SECRET_PATH);
      expect(f.secret, f.resource?.text ?? f.attest?.text ?? f.auth.text).toBe(SECRET);
      expect(new Set([backendOf(f.auth), backendOf(f.attest), backendOf(f.resource)]).size).toBe(3);
    }
    const client = new KbsClient({ url: balancer.url, attester: listed.attester, teeKeyType: 'ec', timeoutMs: 10_000 });
    expect(Buffer.from(await client.getResource(parseResourcePath(SECRET_PATH))).toString('utf8')).toBe(SECRET);
    expect(balancer.served.every((n) => n > 5)).toBe(true);
  });

  it('hardware identity: the activation challenged by A is answered on B; the enrolled node skips activation on C', async () => {
    const first = await splitFlow({ auth: url(0), attest: url(1), resource: url(2) }, idNode.attester, SECRET_PATH);
    expect(Object.keys((first.auth.json as { 'extra-params': object })['extra-params'])).toEqual(['tpm-credential']);
    expect(first.secret, first.attest?.text).toBe(SECRET);
    const ev = (t: string) => (decodeJwt(t) as { submods: { cpu0: Record<string, any> } }).submods.cpu0['ear.veraison.annotated-evidence'];
    expect(ev(first.token!)['node_id']).toBe(idNode.ekHash);
    expect(ev(first.token!)['tpm']['credential_activation']).toBe('performed');
    const again = await splitFlow({ auth: url(2), attest: url(0), resource: url(1) }, idNode.attester, SECRET_PATH);
    expect((again.auth.json as { 'extra-params': unknown })['extra-params']).toBe('');
    expect(ev(again.token!)['tpm']['credential_activation']).toBe('enrolled');
    const nodes = (await http(`${url(1)}/kbs/v0/admin/nodes`, { headers: adminHeaders })).json as { nodes: { nodeId: string; state: string }[] };
    // EK-identified nodes (the `trusted_ak` node has an `ak:` record of its own since issue 13).
    expect(nodes.nodes.filter((n) => !n.nodeId.startsWith('ak:'))).toEqual([expect.objectContaining({ nodeId: idNode.ekHash, state: 'active' })]);
  });

  it('the real keyhold-agent on swtpm enrols by credential activation and gets the secret through the balancer', async () => {
    let swtpm: RunningSwtpm | undefined;
    try {
      swtpm = await startSwtpm({ ekCert: true });
      const ca = await runNodeCli(CLI_BIN, ['ca', '--url', url(2), '--admin-token-file', tokenFile, '--json', 'add', ...(await swtpmLocalCaFiles(join(dir, 'localca')))]);
      expect(ca.code, ca.stderr).toBe(0);
      const r = await runNodeCli(AGENT_BIN, ['get-resource', `kbs:///${SECRET_PATH}`, '--url', balancer.url, '--tcti', swtpm.tcti]);
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout).toBe(SECRET);
      const list = await runNodeCli(CLI_BIN, ['node', '--url', url(0), '--admin-token-file', tokenFile, '--json', 'list']);
      expect((JSON.parse(list.stdout) as { nodes: { ekTrust: string }[] }).nodes.some((n) => n.ekTrust === 'ca')).toBe(true);
    } finally {
      await swtpm?.stop();
    }
  });
});

describe('refusals across replicas', () => {
  it('the same evidence sent to two replicas at once: exactly one succeeds', async () => {
    for (let round = 0; round < 3; round++) {
      const s = await auth(url(round % 3));
      const a = await buildAttestation(listed.tpm, listed.ak, s.nonce);
      const answers = await Promise.all([attest(url((round + 1) % 3), s.cookie, a.body), attest(url((round + 2) % 3), s.cookie, a.body)]);
      const statuses = answers.map((x) => x.status).sort();
      expect(statuses).toEqual([200, 401]);
      expect(variantOf(answers.find((x) => x.status === 401)!)).toBe('NonceMismatch');
      // A third replay on the replica that created the session is refused too.
      expect((await attest(url(round % 3), s.cookie, a.body)).status).toBe(401);
    }
  });

  it('evidence for another session, unknown and unattested cookies, an untrusted EK', async () => {
    const s1 = await auth(url(0));
    const s2 = await auth(url(1));
    const forS1 = await buildAttestation(listed.tpm, listed.ak, s1.nonce);
    const mismatch = await attest(url(2), s2.cookie, forS1.body);
    expect({ status: mismatch.status, v: variantOf(mismatch) }).toEqual({ status: 401, v: 'NonceMismatch' });
    const unknown = await attest(url(1), '0123456789abcdef0123456789abcdef', forS1.body);
    expect({ status: unknown.status, v: variantOf(unknown) }).toEqual({ status: 401, v: 'CookieNotFound' });
    const unattested = await getResource(url(2), SECRET_PATH, { cookie: s1.cookie });
    expect({ status: unattested.status, v: variantOf(unattested) }).toEqual({ status: 401, v: 'UnAuthenticatedCookie' });
    expect(unattested.text).not.toContain(SECRET);
    const stranger = createSoftwareTpm({ ekKeys: { rsa: generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey } });
    try {
      const sAk = (await loadOrCreateAk(stranger, { persistentHandle: 0x81010002, persist: true })).ak;
      const f = await splitFlow({ auth: url(1), attest: url(2), resource: url(0) }, new TpmAttester(stranger, sAk, [new IdentityContributor({ tpm: stranger, ak: sAk })]), SECRET_PATH);
      expect(f.failedAt).toBe('auth');
      expect((f.auth.json as { detail: string }).detail).toMatch(/^EK_UNTRUSTED/);
    } finally {
      await stranger.close();
    }
  });

  it('a reference value set on A applies at the next attestation on B; deleting it on C lifts it', async () => {
    expect((await adminPost(url(0), '/kbs/v0/reference-value', rvBody({ tpm_pcr07: ['ff'.repeat(32)] }))).status).toBe(200);
    const denied = await splitFlow({ auth: url(2), attest: url(1), resource: url(0) }, listed.attester, SECRET_PATH);
    expect(denied.failedAt).toBe('resource');
    expect({ status: denied.resource!.status, v: variantOf(denied.resource!) }).toEqual({ status: 403, v: 'PolicyDeny' });
    expect((decodeJwt(denied.token!) as { submods: { cpu0: Record<string, unknown> } }).submods.cpu0['ear.status']).toBe('contraindicated');
    expect((await http(`${url(2)}/kbs/v0/reference-value/tpm_pcr07`, { method: 'DELETE', headers: adminHeaders })).status).toBe(204);
    expect((await splitFlow({ auth: url(0), attest: url(1), resource: url(2) }, listed.attester, SECRET_PATH)).secret).toBe(SECRET);
  });
});

describe('revocation is effective on every replica at the next request', () => {
  it('revoked through A: refused on B and C, its valid bearer token and attested session included', async () => {
    const f = await splitFlow({ auth: url(1), attest: url(2), resource: url(0) }, idNode.attester, SECRET_PATH);
    expect(f.secret).toBe(SECRET);
    const revoked = await http(`${url(0)}/kbs/v0/admin/nodes/${idNode.ekHash}/revoke`, { method: 'POST', headers: adminHeaders });
    expect(revoked.status).toBe(200);
    for (const i of [1, 2]) {
      for (const credentials of [{ bearer: f.token! }, { cookie: f.cookie! }]) {
        const r = await getResource(url(i), SECRET_PATH, credentials);
        expect({ status: r.status, v: variantOf(r) }).toEqual({ status: 403, v: 'NodeRevoked' });
        expect(r.text).not.toContain(SECRET);
      }
    }
    const again = await splitFlow({ auth: url(2), attest: url(1), resource: url(0) }, idNode.attester, SECRET_PATH);
    expect(again.failedAt).toBe('auth');
    expect(again.auth.status).toBe(403);
  });
});

describe('concurrent admin writes spread over the replicas', () => {
  it('50 reference-value writes and delete-vs-set races on every store: all visible on every replica and after restarting all of them', async () => {
    const set = await runAdminRaces(replicas.map((r) => r.url), adminHeaders, 'rep');
    for (let i = 0; i < 3; i++) expect(await checkAdminRaces(url(i), adminHeaders, set)).toEqual([]);
    // trusted_ak deleted on one replica while another writes an unrelated name: it stays deleted.
    const before = (await http(`${url(0)}/kbs/v0/reference-value/trusted_ak`, { headers: adminHeaders })).json as { values: string[] };
    await Promise.all([
      http(`${url(1)}/kbs/v0/reference-value/trusted_ak`, { method: 'DELETE', headers: adminHeaders }),
      adminPost(url(2), '/kbs/v0/reference-value', rvBody({ unrelated_name: ['z'] })),
    ]);
    const refused = await splitFlow({ auth: url(0), attest: url(1), resource: url(2) }, listed.attester, SECRET_PATH);
    expect(refused.failedAt).toBe('attest');
    expect((refused.attest!.json as { detail: string }).detail).toMatch(/AK is not trusted/);
    expect((await adminPost(url(0), '/kbs/v0/reference-value', rvBody({ trusted_ak: before.values }))).status).toBe(200);

    const ports = replicas.map((r) => r.port);
    await Promise.all(replicas.map((r) => r.stop()));
    for (let i = 0; i < 3; i++) replicas[i] = await startReplica(i, ports[i]);
    for (let i = 0; i < 3; i++) expect(await checkAdminRaces(url(i), adminHeaders, set)).toEqual([]);
    expect((await splitFlow({ auth: url(2), attest: url(0), resource: url(1) }, listed.attester, SECRET_PATH)).secret).toBe(SECRET);
  });
});

describe('one replica killed under load', () => {
  it('only requests in flight on it fail; sessions it created continue elsewhere; the audit chain verifies', async () => {
    const victim = 2;
    // A session created by the victim, finished on the others after it died.
    const orphan = await auth(url(victim));
    const orphanEvidence = await buildAttestation(listed.tpm, listed.ak, orphan.nonce);

    const results: { ok: boolean; failures: { status: number; backend: number | undefined }[] }[] = [];
    let stop = false;
    const workers = Array.from({ length: 4 }, async () => {
      while (!stop) {
        const f = await splitFlow({ auth: balancer.url, attest: balancer.url, resource: balancer.url }, listed.attester, SECRET_PATH).catch((err: unknown) => err as Error);
        if (f instanceof Error) {
          // A client-side failure (no HTTP answer at all) is not an allowed outcome: it fails the checks below.
          results.push({ ok: false, failures: [{ status: -1, backend: undefined }] });
          continue;
        }
        const steps = [f.auth, f.attest, f.resource].filter((x) => x !== undefined);
        results.push({ ok: f.secret === SECRET, failures: steps.filter((x) => x.status !== 200).map((x) => ({ status: x.status, backend: backendOf(x) })) });
      }
    });
    await new Promise((r) => setTimeout(r, 1500));
    const killedAt = results.length;
    replicas[victim]!.proc.child.kill('SIGKILL');
    await replicas[victim]!.proc.exited;
    await new Promise((r) => setTimeout(r, 2000));
    stop = true;
    await Promise.all(workers);

    const failed = results.filter((r) => !r.ok);
    // Every failed flow failed on a request in flight on the killed replica (the balancer's 502).
    for (const f of failed) expect(f.failures, JSON.stringify(f)).toEqual([{ status: 502, backend: victim }]);
    expect(failed.length).toBeLessThanOrEqual(4);
    expect(results.slice(killedAt).filter((r) => r.ok).length).toBeGreaterThan(3);
    expect(balancer.down.has(victim)).toBe(true);

    const done = await attest(url(0), orphan.cookie, orphanEvidence.body);
    expect(done.status, done.text).toBe(200);
    const res = await getResource(url(1), SECRET_PATH, { cookie: orphan.cookie });
    expect(res.status).toBe(200);

    const verify = await runNodeCli(CLI_BIN, ['audit', '--url', url(0), '--admin-token-file', tokenFile, '--verify', '--json']);
    expect(verify.code, verify.stderr + verify.stdout.slice(0, 500)).toBe(0);
  });
});
