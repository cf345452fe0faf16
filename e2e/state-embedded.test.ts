/**
 * Issue 10 with the default embedded state, through the built `keyhold-kbs` process: concurrent
 * admin writes on every store are never lost (50 distinct reference values; a DELETE racing an
 * unrelated write stays deleted, including `trusted_ak`), all of it survives a restart, a second
 * KBS on the same data dir is refused naming the first one's pid, and `--workers` is refused.
 */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createSoftwareTpm, loadOrCreateAk, TpmAttester, tpm2bPublicToSpkiDer, type TpmDevice } from '@keyhold/attestation-agent';
import { freePort } from '@keyhold/test-harness';
import { checkAdminRaces, runAdminRaces } from './harness/admin-races.js';
import { createAdminKeys, type AdminKeys } from './harness/admin-keys.js';
import { startKbsProcess, type KbsProcess } from './harness/kbs-process.js';
import { http } from './harness/raw-flow.js';
import { KBS_BIN } from './harness/repo.js';
import { runNodeCli } from './harness/run-cli.js';
import { splitFlow } from './harness/split-flow.js';

const SECRET = 'embedded-state-secret-0d77';
const SECRET_PATH = 'default/key/embedded';

let dir: string;
let dataDir: string;
let admin: AdminKeys;
let adminHeaders: Record<string, string>;
let kbs: KbsProcess;
let tpm: TpmDevice;
let attester: TpmAttester;
let trustedAk: string;
const configToml = '[rate_limit]\nauth_per_sec = 100000\nauth_burst = 100000\nadmin_per_sec = 100000\nadmin_burst = 100000\n';

function rvBody(values: Record<string, string[]>): string {
  return JSON.stringify({ version: '0.1.0', type: 'sample', payload: Buffer.from(JSON.stringify(values)).toString('base64') });
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'keyhold-e2e-embedded-state-'));
  dataDir = join(dir, 'kbs', 'data');
  await mkdir(dataDir, { recursive: true });
  admin = await createAdminKeys(dir);
  adminHeaders = { authorization: `Bearer ${await admin.token({ lifetimeS: 900 })}` };
  kbs = await startKbsProcess({ dataDir, adminPublicKeyFile: admin.publicKeyFile, configToml });
  tpm = createSoftwareTpm();
  const { ak } = await loadOrCreateAk(tpm, { persistentHandle: 0x81010002, persist: true });
  attester = new TpmAttester(tpm, ak, []);
  trustedAk = Buffer.from(tpm2bPublicToSpkiDer(ak.publicArea)).toString('base64');
  const json = { ...adminHeaders, 'content-type': 'application/json' };
  expect((await http(`${kbs.url}/kbs/v0/reference-value`, { method: 'POST', headers: json, body: rvBody({ trusted_ak: [trustedAk] }) })).status).toBe(200);
  expect((await http(`${kbs.url}/kbs/v0/resource/${SECRET_PATH}`, { method: 'POST', headers: adminHeaders, body: SECRET })).status).toBe(200);
}, 60_000);

afterAll(async () => {
  await kbs?.stop();
  await tpm?.close();
  if (dir !== undefined) await rm(dir, { recursive: true, force: true });
});

describe('embedded state: no acknowledged admin write is lost', () => {
  it('50 concurrent reference-value writes and delete-vs-set races on every store, before and after a restart', async () => {
    const set = await runAdminRaces([kbs.url], adminHeaders, 'emb');
    expect(await checkAdminRaces(kbs.url, adminHeaders, set)).toEqual([]);

    // The regression of the issue: DELETE trusted_ak racing an unrelated POST is not undone.
    await Promise.all([
      http(`${kbs.url}/kbs/v0/reference-value/trusted_ak`, { method: 'DELETE', headers: adminHeaders }),
      http(`${kbs.url}/kbs/v0/reference-value`, { method: 'POST', headers: { ...adminHeaders, 'content-type': 'application/json' }, body: rvBody({ unrelated: ['u'] }) }),
    ]);
    const refused = await splitFlow({ auth: kbs.url, attest: kbs.url, resource: kbs.url }, attester, SECRET_PATH);
    expect(refused.failedAt).toBe('attest');

    const port = kbs.port;
    await kbs.stop();
    kbs = await startKbsProcess({ dataDir, adminPublicKeyFile: admin.publicKeyFile, configToml, port });
    expect(await checkAdminRaces(kbs.url, adminHeaders, set)).toEqual([]);
    expect((await http(`${kbs.url}/kbs/v0/reference-value/trusted_ak`, { headers: adminHeaders })).status).toBe(404);
    expect((await http(`${kbs.url}/kbs/v0/reference-value/unrelated`, { headers: adminHeaders })).status).toBe(200);
    // Restored, the node attests again after the restart.
    await http(`${kbs.url}/kbs/v0/reference-value`, { method: 'POST', headers: { ...adminHeaders, 'content-type': 'application/json' }, body: rvBody({ trusted_ak: [trustedAk] }) });
    expect((await splitFlow({ auth: kbs.url, attest: kbs.url, resource: kbs.url }, attester, SECRET_PATH)).secret).toBe(SECRET);
  });
});

describe('one process per embedded data dir', () => {
  // SECURITY negative tests: a second process on the same state would split it silently.
  it('refuses a second KBS on the same data dir, naming the running one', async () => {
    const r = await runNodeCli(KBS_BIN, ['serve', '--insecure-http', '--listen', `127.0.0.1:${await freePort()}`, '--data-dir', dataDir, '--log-level', 'warn'], { timeoutMs: 20_000 });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(String(kbs.proc.pid));
    expect(r.stderr).toMatch(/another KBS \(pid \d+\) is using the data dir/);
    // The running KBS is unaffected.
    expect((await http(`${kbs.url}/healthz`)).status).toBe(200);
  });

  it('refuses to start when a configured ek_ca_dir does not exist (a typo must not empty the EK trust store)', async () => {
    const cfg = join(dir, 'missing-ca.toml');
    await writeFile(cfg, `[tpm]\nek_ca_dir = "${join(dir, 'no-such-ca-dir')}"\n`);
    const r = await runNodeCli(KBS_BIN, ['serve', '--insecure-http', '--listen', `127.0.0.1:${await freePort()}`, '--data-dir', join(dir, 'ca-typo'), '--config', cfg], { timeoutMs: 20_000 });
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/EK CA directory .*no-such-ca-dir/);
  });

  it('refuses --workers with embedded state', async () => {
    const r = await runNodeCli(KBS_BIN, ['serve', '--insecure-http', '--listen', `127.0.0.1:${await freePort()}`, '--data-dir', join(dir, 'other'), '--workers', '2'], { timeoutMs: 20_000 });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/--workers 2 needs a shared state backend: set \[state\] backend = "redis"/);
  });
});
