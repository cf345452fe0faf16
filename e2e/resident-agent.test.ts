/**
 * The resident agent end to end: `keyhold-agent run --resource-socket` as its own process attests a
 * swtpm (EK identity through swtpm's local CA) against the KBS process and serves secrets on its
 * unix socket. Workloads fetch with `keyhold-agent get-resource --resource-socket` (its fast path)
 * and with curl, as they would from confidential-data-hub (GET /cdh/resource/REPO/TYPE/TAG).
 * Fetches attest nothing and leave the TPM free; a revoked node gets nothing; stopping the daemon
 * removes its socket.
 */
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encodePrivateOptions, wrapAnnotationPacket } from '@keyhold/ocicrypt';
import { startSwtpm, type RunningSwtpm } from '@keyhold/test-harness';
import { randomBytes } from 'node:crypto';
import { goUnwrapRequest } from './harness/keyprovider-client.js';
import { createAdminKeys } from './harness/admin-keys.js';
import { startAgentDaemon, type AgentDaemon } from './harness/agent-daemon.js';
import { swtpmLocalCaFiles } from './harness/hardware-identity.js';
import { startKbsProcess, type KbsProcess } from './harness/kbs-process.js';
import { AGENT_BIN, CLI_BIN } from './harness/repo.js';
import { runNodeCli } from './harness/run-cli.js';

const run = promisify(execFile);
const SECRET = 'keyhold-resident-secret-41c9e2';
const SECRET_PATH = 'default/key/resident';
const KEK = randomBytes(32);

let dir: string;
let swtpm: RunningSwtpm;
let kbs: KbsProcess;
let daemon: AgentDaemon | undefined;
let tokenFile: string;
let socket: string;
let nodeId: string;

const owner = (...args: string[]) => runNodeCli(CLI_BIN, [...args.slice(0, 1), '--url', kbs.url, '--admin-token-file', tokenFile, ...args.slice(1)]);
const fetchThroughSocket = (...args: string[]) => runNodeCli(AGENT_BIN, ['get-resource', '--resource-socket', socket, ...args], { timeoutMs: 30_000 });
const curl = (path: string) => run('curl', ['-sS', '--unix-socket', socket, '-o', '-', '-w', '\n%{http_code}', `http://localhost${path}`]).then(({ stdout }) => {
  const at = stdout.lastIndexOf('\n');
  return { status: Number(stdout.slice(at + 1)), body: stdout.slice(0, at) };
});

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'keyhold-e2e-resident-'));
  swtpm = await startSwtpm({ ekCert: true });
  const admin = await createAdminKeys(dir);
  tokenFile = join(dir, 'admin.jwt');
  await writeFile(tokenFile, await admin.token({ lifetimeS: 900 }));
  const caDir = join(dir, 'localca');
  await swtpmLocalCaFiles(caDir);
  kbs = await startKbsProcess({
    dataDir: join(dir, 'kbs'),
    adminPublicKeyFile: admin.publicKeyFile,
    configToml: ['[tpm]', 'trusted_ak_list = false', `ek_ca_dir = "${caDir}"`, ''].join('\n'),
  });
  await writeFile(join(dir, 'secret.bin'), SECRET);
  const set = await owner('config', 'set-resource', '--path', SECRET_PATH, '--resource-file', join(dir, 'secret.bin'));
  expect(set.code, set.stderr).toBe(0);
  await writeFile(join(dir, 'kek.bin'), KEK);
  const setKek = await owner('config', 'set-resource', '--path', 'default/image-kek/resident', '--resource-file', join(dir, 'kek.bin'));
  expect(setKek.code, setKek.stderr).toBe(0);
  const ek = await runNodeCli(CLI_BIN, ['ek-hash', '--tcti', swtpm.tcti, '--json']);
  expect(ek.code, ek.stderr).toBe(0);
  nodeId = (JSON.parse(ek.stdout) as { ekHash: string }).ekHash;
  await mkdir(join(dir, 'run'), { mode: 0o700 });
  socket = join(dir, 'run', 'agent.sock');
  // Attests at start, then hourly: every fetch below is served with that one attestation.
  daemon = await startAgentDaemon(['--url', kbs.url, '--tcti', swtpm.tcti, '--state-dir', join(dir, 'agent-state'), '--interval', '1h', '--resource-socket', socket, '--log-level', 'info'], join(dir, 'status.json'));
  for (const deadline = Date.now() + 60_000; (await daemon.status())?.attested !== true; ) {
    if (Date.now() > deadline) throw new Error(`the daemon did not attest:\n${daemon.proc.output()}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}, 120_000);

afterAll(async () => {
  await daemon?.stop();
  await kbs?.stop();
  await swtpm?.stop();
  if (dir !== undefined) await rm(dir, { recursive: true, force: true });
});

describe('keyhold-agent run --resource-socket', () => {
  it('serves the secret to get-resource and to curl on a 0600 socket, attesting nothing per fetch and leaving the TPM free', async () => {
    expect((await stat(socket)).mode & 0o777).toBe(0o600);
    const raw = await fetchThroughSocket(`kbs:///${SECRET_PATH}`);
    expect([raw.code, raw.stdout, raw.stderr]).toEqual([0, SECRET, '']);
    const b64 = await fetchThroughSocket('--path', SECRET_PATH, '--base64');
    expect(b64.stdout).toBe(`${Buffer.from(SECRET).toString('base64')}\n`);
    // The CLI's own path (--json is not the fast path's form) goes through the socket as well.
    const file = join(dir, 'out.bin');
    const json = await fetchThroughSocket(SECRET_PATH, '-o', file, '--json');
    expect([json.code, JSON.parse(json.stdout)]).toEqual([0, { written: file, bytes: SECRET.length }]);

    const missing = await fetchThroughSocket('default/key/absent');
    expect(missing.code).toBe(4);
    expect(missing.stderr).toMatch(/^keyhold-agent get-resource: RESOURCE_NOT_FOUND: /);

    // What a workload written for confidential-data-hub sends.
    expect(await curl(`/cdh/resource/${SECRET_PATH}`)).toEqual({ status: 200, body: SECRET });
    const bad = await curl('/cdh/resource/default/../key/resident');
    expect(bad.status).toBe(400);
    expect(JSON.parse(bad.body)).toMatchObject({ type: 'https://keyhold.dev/agent/errors/RESOURCE_PATH_INVALID' });

    // ocicrypt's cmd mode, once per layer key: the KEK comes through the daemon too.
    const optsData = encodePrivateOptions({ symkey: randomBytes(32), digest: `sha256:${'ef'.repeat(32)}`, nonce: randomBytes(16) });
    const packet = Buffer.from(wrapAnnotationPacket(optsData, { kid: 'kbs:///default/image-kek/resident', kek: KEK })).toString('base64');
    const unwrapped = await runNodeCli(AGENT_BIN, ['keyprovider', 'cmd', '--resource-socket', socket], { input: goUnwrapRequest(packet) });
    expect(unwrapped.code, unwrapped.stderr).toBe(0);
    expect(JSON.parse(unwrapped.stdout)).toEqual({ keyunwrapresults: { optsdata: Buffer.from(optsData).toString('base64') } });

    // The TPM is not held between attestations: a direct TPM command runs while the daemon serves.
    const ak = await runNodeCli(AGENT_BIN, ['ak', '--json', '--tcti', swtpm.tcti, '--state-dir', join(dir, 'agent-state')], { timeoutMs: 20_000 });
    expect(ak.code, ak.stderr).toBe(0);

    const logs = daemon!.logs();
    expect(logs.filter((l) => l['msg'] === 'attested')).toHaveLength(1);
    expect(logs.filter((l) => l['msg'] === 'resource served').length).toBeGreaterThanOrEqual(5);
    expect(logs.find((l) => l['msg'] === 'resource served')).toMatchObject({ resource: SECRET_PATH, bytes: SECRET.length });
    expect(JSON.stringify(logs)).not.toContain(SECRET);
    expect(JSON.stringify(logs)).not.toMatch(/eyJ[A-Za-z0-9_-]{20,}\./);
  });

  it('gives a revoked node nothing through the socket, and removes the socket when stopped', async () => {
    const revoked = await owner('node', 'revoke', nodeId);
    expect(revoked.code, revoked.stderr).toBe(0);
    const refused = await fetchThroughSocket(SECRET_PATH);
    expect(refused.code).toBe(3);
    expect(refused.stdout).toBe('');
    expect(refused.stderr).toMatch(/NodeRevoked/);
    expect((await curl(`/cdh/resource/${SECRET_PATH}`)).status).toBe(403);

    expect(await daemon!.stop()).toBe(0);
    daemon = undefined;
    await expect(stat(socket)).rejects.toThrow(/ENOENT/);
    const gone = await fetchThroughSocket(SECRET_PATH);
    expect(gone.code).toBe(1);
    expect(gone.stderr).toMatch(/AGENT_UNREACHABLE: .*no keyhold-agent run is serving it/);
  });
});
