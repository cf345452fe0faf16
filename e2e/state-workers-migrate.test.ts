/**
 * Issue 10 on a standalone redis-server (AOF, appendfsync always): `keyhold-kbs serve --workers 2`
 * (node:cluster, one port) serves flows and shares one rate-limit bucket across its workers;
 * `keyhold-kbs migrate-state` copies a populated embedded data dir into Redis (refused while the KBS
 * holds the dir), after which a KBS on Redis state serves the same enrolled and revoked nodes,
 * reference values, policies and audit trail; a Redis SIGKILL answers 503 with the error body
 * (never a crash, a hang or a secret) and the same KBS recovers when Redis is back, with the
 * sessions opened before the outage.
 */
import { generateKeyPairSync } from 'node:crypto';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { base64url, decodeJwt } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createSoftwareTpm, IdentityContributor, loadOrCreateAk, TpmAttester, tpm2bPublicToSpkiDer, type TpmDevice } from '@keyhold/attestation-agent';
import { startRedis, type RedisServer } from '@keyhold/test-harness';
import { ekHash, parseTpm2bPublic, tpmPublicToSpkiDer } from '@keyhold/verifier';
import { createAdminKeys, type AdminKeys } from './harness/admin-keys.js';
import { startKbsProcess } from './harness/kbs-process.js';
import { attest, auth, buildAttestation, http, variantOf } from './harness/raw-flow.js';
import { CLI_BIN, KBS_BIN } from './harness/repo.js';
import { runNodeCli } from './harness/run-cli.js';
import { splitFlow } from './harness/split-flow.js';

const SECRET = 'migrated-secret-6a0f';
const SECRET_PATH = 'default/key/migrate';

let dir: string;
let redis: RedisServer;
let admin: AdminKeys;
let adminHeaders: Record<string, string>;
let tokenFile: string;
let listedTpm: TpmDevice;
let listed: TpmAttester;
let trustedAk: string;

function rvBody(values: Record<string, string[]>): string {
  return JSON.stringify({ version: '0.1.0', type: 'sample', payload: Buffer.from(JSON.stringify(values)).toString('base64') });
}

async function adminPost(base: string, path: string, body: string, type = 'application/json') {
  return http(`${base}${path}`, { method: 'POST', headers: { ...adminHeaders, 'content-type': type }, body });
}

/** Pids whose parent is `pid` (from /proc). */
async function childrenOf(pid: number): Promise<number[]> {
  const out: number[] = [];
  for (const e of await readdir('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    const stat = await readFile(`/proc/${e}/stat`, 'utf8').catch(() => '');
    const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
    if (ppid === pid) out.push(Number(e));
  }
  return out;
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'keyhold-e2e-workers-migrate-'));
  redis = await startRedis({ args: ['--appendonly', 'yes', '--appendfsync', 'always'] });
  admin = await createAdminKeys(dir);
  adminHeaders = { authorization: `Bearer ${await admin.token({ lifetimeS: 900 })}` };
  tokenFile = join(dir, 'admin.jwt');
  await writeFile(tokenFile, await admin.token({ lifetimeS: 900 }));
  listedTpm = createSoftwareTpm();
  const { ak } = await loadOrCreateAk(listedTpm, { persistentHandle: 0x81010002, persist: true });
  listed = new TpmAttester(listedTpm, ak, []);
  trustedAk = Buffer.from(tpm2bPublicToSpkiDer(ak.publicArea)).toString('base64');
}, 60_000);

afterAll(async () => {
  await redis?.stop();
  await listedTpm?.close();
  if (dir !== undefined) await rm(dir, { recursive: true, force: true });
});

describe('keyhold-kbs serve --workers 2 on redis state', () => {
  it('serves a flow, shares one /auth rate-limit bucket across workers, and stops every worker', async () => {
    const dataDir = join(dir, 'workers', 'data');
    await mkdir(dataDir, { recursive: true });
    const kbs = await startKbsProcess({
      dataDir,
      adminPublicKeyFile: admin.publicKeyFile,
      extraArgs: ['--workers', '2'],
      configToml: `[state]\nbackend = "redis"\nurl = "${redis.url}"\nkey_prefix = "wk"\n[rate_limit]\nauth_per_sec = 0.01\nauth_burst = 4\n`,
    });
    let workers: number[] = [];
    try {
      workers = await childrenOf(kbs.proc.pid!);
      expect(workers).toHaveLength(2);
      // The generated signing key was created once, by the primary, before the workers started.
      expect((await readdir(dataDir)).filter((f) => f.startsWith('token-signing-key'))).toEqual(['token-signing-key.pem']);
      expect((await adminPost(kbs.url, '/kbs/v0/reference-value', rvBody({ trusted_ak: [trustedAk] }))).status).toBe(200);
      expect((await http(`${kbs.url}/kbs/v0/resource/${SECRET_PATH}`, { method: 'POST', headers: adminHeaders, body: SECRET })).status).toBe(200);
      // Several flows over one port: the primary spreads connections over both workers.
      for (let i = 0; i < 2; i++) expect((await splitFlow({ auth: kbs.url, attest: kbs.url, resource: kbs.url }, listed, SECRET_PATH)).secret).toBe(SECRET);
      // 2 /auth calls spent; with a bucket per process, 4 more would pass on each worker.
      const statuses: number[] = [];
      for (let i = 0; i < 6; i++) statuses.push((await auth(kbs.url)).answer.status);
      expect(statuses).toEqual([200, 200, 429, 429, 429, 429]);
    } finally {
      await kbs.stop();
    }
    expect(kbs.proc.child.exitCode).toBe(0);
    for (const w of workers) expect(await readFile(`/proc/${w}/stat`, 'utf8').catch(() => 'gone')).toBe('gone');
  });
});

describe('keyhold-kbs migrate-state --from embedded --to redis', () => {
  it('copies nodes, reference values, allowlist, policies and the audit trail; a KBS on redis state then serves them', async () => {
    const dataDir = join(dir, 'migrate', 'data');
    await mkdir(dataDir, { recursive: true });
    const config = join(dir, 'migrate', 'kbs.toml');
    // The same file before and after: [state] names the Redis; only `backend` changes.
    const base = `[state]\nurl = "${redis.url}"\nkey_prefix = "mig"\n`;
    await writeFile(config, base);
    const embedded = await startKbsProcess({ dataDir, adminPublicKeyFile: admin.publicKeyFile, configToml: base });

    const idTpm = createSoftwareTpm({ ekKeys: { rsa: generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey } });
    try {
      const idAk = (await loadOrCreateAk(idTpm, { persistentHandle: 0x81010002, persist: true })).ak;
      const contributor = new IdentityContributor({ tpm: idTpm, ak: idAk });
      const idAttester = new TpmAttester(idTpm, idAk, [contributor]);
      const node = ekHash(tpmPublicToSpkiDer(parseTpm2bPublic(Buffer.from((await contributor.identity()).ek_tpm2b_public, 'base64'))));
      const revokedNode = 'ab'.repeat(32);

      // Populate the embedded state.
      expect((await adminPost(embedded.url, '/kbs/v0/reference-value', rvBody({ trusted_ak: [trustedAk], extra_name: ['1', '2'] }))).status).toBe(200);
      expect((await http(`${embedded.url}/kbs/v0/resource/${SECRET_PATH}`, { method: 'POST', headers: adminHeaders, body: SECRET })).status).toBe(200);
      expect((await http(`${embedded.url}/kbs/v0/resource/denied/key/x`, { method: 'POST', headers: adminHeaders, body: 'never' })).status).toBe(200);
      expect((await adminPost(embedded.url, '/kbs/v0/admin/ek-allowlist', JSON.stringify({ ekHash: node, note: 'rack 9' }))).status).toBe(200);
      expect((await adminPost(embedded.url, `/kbs/v0/admin/nodes/${revokedNode}/revoke`, '')).status).toBe(200);
      expect((await adminPost(embedded.url, '/kbs/v0/resource-policy/denied', JSON.stringify({ policy: base64url.encode('false') }))).status).toBe(200);
      const enrol = await splitFlow({ auth: embedded.url, attest: embedded.url, resource: embedded.url }, idAttester, SECRET_PATH);
      expect(enrol.secret, enrol.attest?.text).toBe(SECRET);
      const auditBefore = (await http(`${embedded.url}/kbs/v0/audit`, { headers: adminHeaders })).json as { records: unknown[]; head: { seq: number; hash: string } };

      // While the KBS holds the data dir, the migration is refused (the lock names it).
      const locked = await runNodeCli(KBS_BIN, ['migrate-state', '--from', 'embedded', '--to', 'redis', '--config', config, '--data-dir', dataDir]);
      expect(locked.code).toBe(2);
      expect(locked.stderr).toContain(String(embedded.proc.pid));
      await embedded.stop();

      const migrated = await runNodeCli(KBS_BIN, ['migrate-state', '--from', 'embedded', '--to', 'redis', '--config', config, '--data-dir', dataDir]);
      expect(migrated.code, migrated.stderr).toBe(0);
      expect(migrated.stderr).toMatch(/copying state from embedded/);
      const summary = JSON.parse(migrated.stdout) as Record<string, unknown>;
      expect(summary).toMatchObject({ from: 'embedded', to: 'redis', nodes: { copied: 2 }, ekAllowlist: { copied: 1 }, audit: { sourceChainOk: true } });
      // A second run finds a non-empty target: refused (exit 2) unless --merge.
      const again = await runNodeCli(KBS_BIN, ['migrate-state', '--from', 'embedded', '--to', 'redis', '--config', config, '--data-dir', dataDir]);
      expect(again.code).toBe(2);
      expect(again.stderr).toMatch(/not empty/);

      await writeFile(config, `${base}backend = "redis"\n`);
      const onRedis = await startKbsProcess({ dataDir, adminPublicKeyFile: admin.publicKeyFile, configToml: `${base}backend = "redis"\n` });
      try {
        // The enrolled node skips activation; the revoked one stays revoked; the allowlist note came along.
        const again = await splitFlow({ auth: onRedis.url, attest: onRedis.url, resource: onRedis.url }, idAttester, SECRET_PATH);
        expect(again.secret, again.attest?.text ?? again.auth.text).toBe(SECRET);
        expect((again.auth.json as { 'extra-params': unknown })['extra-params']).toBe('');
        const cpu0 = (decodeJwt(again.token!) as { submods: { cpu0: Record<string, any> } }).submods.cpu0;
        expect(cpu0['ear.veraison.annotated-evidence']['tpm']['credential_activation']).toBe('enrolled');
        const nodes = ((await http(`${onRedis.url}/kbs/v0/admin/nodes`, { headers: adminHeaders })).json as { nodes: { nodeId: string; state: string }[] }).nodes;
        expect(nodes).toEqual(expect.arrayContaining([expect.objectContaining({ nodeId: node, state: 'active' }), expect.objectContaining({ nodeId: revokedNode, state: 'revoked' })]));
        const allow = (await http(`${onRedis.url}/kbs/v0/admin/ek-allowlist`, { headers: adminHeaders })).json as { entries: { ekHash: string; note?: string }[] };
        expect(allow.entries).toEqual([expect.objectContaining({ ekHash: node, note: 'rack 9' })]);
        expect(((await http(`${onRedis.url}/kbs/v0/reference-value/extra_name`, { headers: adminHeaders })).json as { values: string[] }).values).toEqual(['1', '2']);
        // The Trustee-path node (trusted_ak) and the stored resource policy.
        expect((await splitFlow({ auth: onRedis.url, attest: onRedis.url, resource: onRedis.url }, listed, SECRET_PATH)).secret).toBe(SECRET);
        const denied = await splitFlow({ auth: onRedis.url, attest: onRedis.url, resource: onRedis.url }, listed, 'denied/key/x');
        expect({ status: denied.resource?.status, v: denied.resource !== undefined ? variantOf(denied.resource) : undefined }).toEqual({ status: 403, v: 'PolicyDeny' });
        // One audit chain: the migrated records, then the new ones, verified end to end.
        const audit = (await http(`${onRedis.url}/kbs/v0/audit`, { headers: adminHeaders })).json as { records: { seq: number; hash: string }[] };
        expect(audit.records.length).toBeGreaterThan(auditBefore.records.length);
        expect(audit.records[auditBefore.head.seq - 1]).toMatchObject(auditBefore.head);
        const verify = await runNodeCli(CLI_BIN, ['audit', '--url', onRedis.url, '--admin-token-file', tokenFile, '--verify', '--json']);
        expect(verify.code, verify.stderr).toBe(0);
      } finally {
        await onRedis.stop();
      }
    } finally {
      await idTpm.close();
    }
  });

  it('refuses bad arguments with exit 2', async () => {
    const cfg = join(dir, 'bad.toml');
    await writeFile(cfg, '');
    for (const args of [['--from', 'embedded', '--to', 'embedded'], ['--from', 'sqlite', '--to', 'redis'], ['--from', 'embedded', '--to', 'redis', '--bogus']]) {
      const r = await runNodeCli(KBS_BIN, ['migrate-state', ...args, '--config', cfg, '--data-dir', join(dir, 'nowhere')]);
      expect(r.code, args.join(' ')).toBe(2);
    }
    // No Redis configured: nothing to migrate to.
    const r = await runNodeCli(KBS_BIN, ['migrate-state', '--from', 'embedded', '--to', 'redis', '--config', cfg, '--data-dir', join(dir, 'nowhere')]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/needs a Redis/);
  });
});

describe('a Redis outage under redis state', () => {
  it('answers 503 StorageUnavailable on every route during the outage and recovers without a restart', async () => {
    const dataDir = join(dir, 'outage', 'data');
    await mkdir(dataDir, { recursive: true });
    const kbs = await startKbsProcess({
      dataDir,
      adminPublicKeyFile: admin.publicKeyFile,
      configToml: `[state]\nbackend = "redis"\nurl = "${redis.url}"\nkey_prefix = "out"\noperation_timeout_ms = 800\n`,
    });
    try {
      expect((await adminPost(kbs.url, '/kbs/v0/reference-value', rvBody({ trusted_ak: [trustedAk] }))).status).toBe(200);
      expect((await http(`${kbs.url}/kbs/v0/resource/${SECRET_PATH}`, { method: 'POST', headers: adminHeaders, body: SECRET })).status).toBe(200);
      // A session opened before the outage.
      const before = await auth(kbs.url);
      expect(before.answer.status).toBe(200);

      await redis.kill();
      try {
        const t0 = Date.now();
        const answers = [
          (await auth(kbs.url)).answer,
          await http(`${kbs.url}/kbs/v0/resource/${SECRET_PATH}`, { headers: { cookie: `kbs-session-id=${before.cookie}` } }),
          await http(`${kbs.url}/kbs/v0/admin/nodes`, { headers: adminHeaders }),
          await adminPost(kbs.url, '/kbs/v0/reference-value', rvBody({ during_outage: ['x'] })),
        ];
        for (const a of answers) {
          expect({ status: a.status, v: variantOf(a) }, a.text).toEqual({ status: 503, v: 'StorageUnavailable' });
          expect(a.text).not.toContain(SECRET);
        }
        expect(Date.now() - t0).toBeLessThan(4 * 3000);
      } finally {
        await redis.restart();
      }
      // Same process: the session opened before the outage completes, and new flows work.
      let done;
      for (let i = 0; i < 20; i++) {
        done = await splitFlow({ auth: kbs.url, attest: kbs.url, resource: kbs.url }, listed, SECRET_PATH);
        if (done.secret !== undefined) break;
        await new Promise((r) => setTimeout(r, 250));
      }
      expect(done?.secret).toBe(SECRET);
      expect((await http(`${kbs.url}/kbs/v0/reference-value/trusted_ak`, { headers: adminHeaders })).status).toBe(200);
      const { ak } = await loadOrCreateAk(listedTpm, { persistentHandle: 0x81010002, persist: true });
      const evidence = await buildAttestation(listedTpm, ak, before.nonce);
      const resumed = await attest(kbs.url, before.cookie, evidence.body);
      expect(resumed.status, resumed.text).toBe(200);
      expect(kbs.proc.child.exitCode).toBeNull();
      // Redis state with a signing key generated in the data dir: the operator is told replicas need one key.
      expect(kbs.proc.output()).toMatch(/every replica must use the same key/);
    } finally {
      await kbs.stop();
    }
  });
});
