/**
 * The main job (README, first command): a node with a software TPM (swtpm, EK certificate from
 * swtpm's local CA) proves its state to a KBS running on embedded defaults and receives a secret
 * wrapped to a key bound into its quote. The KBS serves HTTPS with a throwaway CA and server
 * certificate made here (openssl); the CLI and the agent trust that CA through --cert-file. Every
 * step is printed; the KBS keeps running until Ctrl-C (or exits at once with --once).
 *
 *   node --import tsx e2e/main-job.ts [--once] [--data-dir DIR] [--listen HOST:PORT]
 */
import { generateKeyPairSync, createPrivateKey } from 'node:crypto';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { SignJWT } from 'jose';
import { decodeJwt } from 'jose';
import { freePort, spawnProcess, startSwtpm, waitForPort, SWTPM_LOCALCA_ISSUER_CERT, SWTPM_LOCALCA_ROOT_CERT } from '@keyhold/test-harness';
import { AGENT_BIN, CLI_BIN, KBS_BIN, REPO_ROOT } from './harness/repo.js';
import { runNodeCli } from './harness/run-cli.js';
import { createTlsPki, httpServerToml } from './harness/tls-pki.js';

const { values } = parseArgs({
  options: { once: { type: 'boolean', default: false }, 'data-dir': { type: 'string' }, listen: { type: 'string', default: '127.0.0.1:8080' } },
});
const dataDir = resolve(values['data-dir'] ?? join(REPO_ROOT, '.keyhold', 'demo'));
const SECRET_PATH = 'default/key/demo';

let stepNo = 0;
function step(msg: string): void {
  stepNo++;
  process.stdout.write(`[${stepNo}] ${msg}\n`);
}
function fail(msg: string): never {
  process.stderr.write(`main-job: ${msg}\n`);
  process.exit(1);
}

async function adminKey(): Promise<{ publicFile: string; token: () => Promise<string> }> {
  const privFile = join(dataDir, 'admin.key.pem');
  const publicFile = join(dataDir, 'admin.pub.pem');
  let priv;
  try {
    priv = createPrivateKey(await readFile(privFile));
  } catch {
    const kp = generateKeyPairSync('ed25519');
    priv = kp.privateKey;
    await writeFile(privFile, priv.export({ format: 'pem', type: 'pkcs8' }), { mode: 0o600 });
    await writeFile(publicFile, kp.publicKey.export({ format: 'pem', type: 'spki' }));
  }
  const key = priv;
  return { publicFile, token: () => new SignJWT({ role: 'admin' }).setProtectedHeader({ alg: 'EdDSA' }).setSubject('demo-owner').setIssuedAt().setExpirationTime('1h').sign(key) };
}

async function main(): Promise<void> {
  await mkdir(dataDir, { recursive: true, mode: 0o700 });
  step(`data dir ${dataDir}`);

  // Each run manufactures a fresh swtpm (new seeds), so an AK stored by an earlier run cannot load
  // under its EK: start the agent's state afresh too.
  await rm(join(dataDir, 'agent'), { recursive: true, force: true });
  step('starting swtpm with an EK certificate from swtpm’s local CA (swtpm_setup --create-ek-cert)');
  const swtpm = await startSwtpm({ ekCert: true });
  process.stdout.write(`    TCTI ${swtpm.tcti}\n`);

  const admin = await adminKey();
  const [host, portText] = values.listen.split(/:(?=\d+$)/) as [string, string];
  let port = Number(portText);
  if (!(await isFree(host, port))) {
    port = await freePort(host);
    process.stdout.write(`    ${values.listen} is busy; using port ${port}\n`);
  }
  step('making a throwaway TLS CA and a server certificate for the KBS (openssl; EC P-256, 3 days)');
  const pki = await createTlsPki(join(dataDir, 'tls'), { hosts: [host] });
  const kbsConfig = join(dataDir, 'kbs.toml');
  await writeFile(kbsConfig, httpServerToml(pki));
  process.stdout.write(`    CA ${pki.caFile}\n    server certificate ${pki.serverCertFile}\n`);
  step(`starting keyhold-kbs on https://${host}:${port} (embedded KMS, in-memory sessions, in-process verifier)`);
  const kbs = spawnProcess({
    name: 'keyhold-kbs',
    command: process.execPath,
    args: [KBS_BIN, 'serve', '--listen', `${host}:${port}`, '--data-dir', join(dataDir, 'kbs'), '--admin-public-key', admin.publicFile, '--config', kbsConfig, '--log-level', 'info'],
  });
  kbs.child.stderr?.on('data', (b: Buffer) => {
    for (const line of b.toString().split('\n').filter(Boolean)) {
      try {
        const j = JSON.parse(line) as { msg?: string; level?: number; [k: string]: unknown };
        process.stdout.write(`    kbs: ${j.msg}${j['resource'] !== undefined ? ` ${String(j['resource'])}` : ''}${j['status'] !== undefined && typeof j['status'] === 'string' ? ` (${j['status']})` : ''}\n`);
      } catch {
        process.stdout.write(`    kbs: ${line}\n`);
      }
    }
  });
  await waitForPort(port, kbs, { host });
  // A wildcard listen address is reached on loopback (the certificate names localhost, 127.0.0.1, ::1 and the listen host).
  const urlHost = host === '0.0.0.0' ? '127.0.0.1' : host === '::' ? '::1' : host;
  const url = `https://${urlHost.includes(':') ? `[${urlHost}]` : urlHost}:${port}`;
  const tlsArgs = ['--cert-file', pki.caFile];
  const stopAll = async (): Promise<void> => {
    await kbs.stop();
    await swtpm.stop();
  };

  try {
    const tokenFile = join(dataDir, 'admin.jwt');
    await writeFile(tokenFile, await admin.token(), { mode: 0o600 });
    const agentArgs = ['--url', url, ...tlsArgs, '--tcti', swtpm.tcti, '--ak-mode', 'stored', '--state-dir', join(dataDir, 'agent')];

    step('owner: trusting swtpm’s local CA as an EK certificate authority (keyhold ca add)');
    const ca = await runNodeCli(CLI_BIN, ['ca', '--url', url, ...tlsArgs, '--admin-token-file', tokenFile, 'add', SWTPM_LOCALCA_ISSUER_CERT, SWTPM_LOCALCA_ROOT_CERT]);
    if (ca.code !== 0) fail(`keyhold ca add failed: ${ca.stderr}`);

    step('agent: creating its AK under the EK (RSA-2048, restricted signing key, like tpm2_createak)');
    const ak = await runNodeCli(AGENT_BIN, ['ak', '--json', ...agentArgs]);
    if (ak.code !== 0) fail(`keyhold-agent ak failed: ${ak.stderr}`);
    const akInfo = JSON.parse(ak.stdout) as { ak_public: string; name: string };
    process.stdout.write(`    AK name ${akInfo.name}\n`);

    step('owner: trusting the node’s AK (reference value trusted_ak) through the admin API');
    const rv = await runNodeCli(CLI_BIN, ['config', '--url', url, ...tlsArgs, '--admin-token-file', tokenFile, 'set-reference-value', '--name', 'trusted_ak', '--value', akInfo.ak_public]);
    if (rv.code !== 0) fail(`keyhold config set-reference-value failed: ${rv.stderr}`);

    step(`owner: uploading a demo secret to ${SECRET_PATH}`);
    const secretFile = join(dataDir, 'demo-secret.txt');
    await writeFile(secretFile, `hello from keyhold, ${new Date().toISOString()}\n`, { mode: 0o600 });
    const put = await runNodeCli(CLI_BIN, ['config', '--url', url, ...tlsArgs, '--admin-token-file', tokenFile, 'set-resource', '--path', SECRET_PATH, '--resource-file', secretFile]);
    if (put.code !== 0) fail(`keyhold config set-resource failed: ${put.stderr}`);

    step(`agent: get-resource kbs:///${SECRET_PATH} (auth → quote PCRs 0-23 with the binding digest → attest → JWE release)`);
    const got = await runNodeCli(AGENT_BIN, ['get-resource', `kbs:///${SECRET_PATH}`, ...agentArgs]);
    if (got.code !== 0) fail(`keyhold-agent get-resource failed: ${got.stderr}`);
    process.stdout.write(`    released secret: ${got.stdout.trimEnd()}\n`);
    const tok = await runNodeCli(AGENT_BIN, ['token', ...agentArgs]);
    if (tok.code === 0) {
      const cpu0 = (decodeJwt(tok.stdout.trim()) as { submods?: { cpu0?: Record<string, any> } }).submods?.cpu0 ?? {};
      const ev = cpu0['ear.veraison.annotated-evidence'] ?? {};
      process.stdout.write(`    token: ear.status ${cpu0['ear.status']}, node ${ev['node_id'] ?? '-'}, ${ev['spiffe_id'] ?? ''}\n`);
    }
    if (got.stdout !== (await readFile(secretFile, 'utf8'))) fail('the released secret differs from the uploaded one');

    if (values.once) {
      step('done (--once): stopping the KBS and swtpm');
      await stopAll();
      return;
    }
    step(`the KBS keeps running — press Ctrl-C to stop it and swtpm`);
    const agentFlags = `--url ${url} --cert-file ${pki.caFile} --tcti ${swtpm.tcti} --ak-mode stored --state-dir ${join(dataDir, 'agent')}`;
    process.stdout.write(
      [
        `    KBS URL       ${url}`,
        `    KBS CA        ${pki.caFile}  (give it to clients: --cert-file, or KEYHOLD_KBS_CA)`,
        `    admin token   ${tokenFile}  (1 hour; a new one: keyhold token issue --key ${join(dataDir, 'admin.key.pem')} --role admin > ${tokenFile})`,
        `    TCTI          ${swtpm.tcti}`,
        '    try:',
        `      keyhold --url ${url} --cert-file ${pki.caFile} --admin-token-file ${tokenFile} config list-resources`,
        `      keyhold-agent ${agentFlags} get-resource ${SECRET_PATH}`,
        '',
      ].join('\n'),
    );
    await new Promise<void>((res) => {
      process.once('SIGINT', res);
      process.once('SIGTERM', res);
    });
    process.stdout.write('\nstopping\n');
    await stopAll();
  } catch (err) {
    await stopAll();
    throw err;
  }
}

async function isFree(host: string, port: number): Promise<boolean> {
  const { createServer } = await import('node:net');
  return new Promise((r) => {
    const s = createServer();
    s.once('error', () => r(false));
    s.listen(port, host, () => s.close(() => r(true)));
  });
}

main().catch((err: unknown) => fail(err instanceof Error ? err.message : String(err)));
