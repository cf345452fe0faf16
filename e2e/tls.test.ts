/**
 * TLS, as Trustee users expect (issue 12): the KBS process over HTTPS with a throwaway CA — the
 * agent's and the CLI's happy path with `--cert-file` / KEYHOLD_KBS_CA, a client without the CA
 * refused with a plain message, an http:// URL against the https KBS explained, `Secure` cookies,
 * the certificate reloaded on SIGHUP without dropping the listener (and a bad replacement refused),
 * mutual TLS on the admin API only, and the INSECURE warning of `--insecure-http`.
 */
import { copyFile, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect as tlsConnect } from 'node:tls';
import { X509Certificate } from 'node:crypto';
import { Agent, request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PROTOCOL_VERSION } from '@keyhold/protocol';
import { startSwtpm, SWTPM_LOCALCA_ISSUER_CERT, SWTPM_LOCALCA_ROOT_CERT, type RunningSwtpm } from '@keyhold/test-harness';
import { createAdminKeys, type AdminKeys } from './harness/admin-keys.js';
import { startKbsProcess, type KbsProcess } from './harness/kbs-process.js';
import { AGENT_BIN, CLI_BIN } from './harness/repo.js';
import { runNodeCli } from './harness/run-cli.js';
import { createClientPki, createTlsPki, type ClientPki, type TlsPki } from './harness/tls-pki.js';

const SECRET = 'released-over-https-7f3a';
let dir: string;
let pki: TlsPki;
let admin: AdminKeys;
let tokenFile: string;
let kbs: KbsProcess;
let swtpm: RunningSwtpm;

interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  text: string;
  json: unknown;
}

/** One request with its own undici agent (CA, optional client certificate). */
async function call(url: string, opts: { ca?: string; cert?: string; key?: string; method?: 'GET' | 'POST'; headers?: Record<string, string>; body?: string } = {}): Promise<Answer> {
  const dispatcher = new Agent({ connect: { ...(opts.ca !== undefined ? { ca: opts.ca } : {}), ...(opts.cert !== undefined ? { cert: opts.cert, key: opts.key } : {}) } });
  try {
    const r = await request(url, { method: opts.method ?? 'GET', dispatcher, ...(opts.headers !== undefined ? { headers: opts.headers } : {}), ...(opts.body !== undefined ? { body: opts.body } : {}) });
    const text = await r.body.text();
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      json = undefined;
    }
    return { status: r.statusCode, headers: r.headers, text, json };
  } finally {
    await dispatcher.close();
  }
}

/** The certificate a new TLS connection to the KBS is served (its SHA-256 fingerprint), trusting `ca`. */
function servedFingerprint(port: number, ca: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = tlsConnect({ host: '127.0.0.1', port, ca, servername: 'localhost' }, () => {
      const fp = s.getPeerCertificate().fingerprint256;
      s.destroy();
      resolve(fp);
    });
    s.once('error', reject);
  });
}

const agentArgs = (url: string, extra: string[] = []) => ['--url', url, '--tcti', swtpm.tcti, '--ak-mode', 'stored', '--state-dir', join(dir, 'agent'), ...extra];
const keyhold = (args: string[], env: NodeJS.ProcessEnv = {}) => runNodeCli(CLI_BIN, ['--url', kbs.url, '--admin-token-file', tokenFile, ...args], { env });

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'keyhold-tls-e2e-'));
  [pki, admin, swtpm] = await Promise.all([createTlsPki(join(dir, 'tls')), createAdminKeys(dir), startSwtpm({ ekCert: true })]);
  tokenFile = join(dir, 'admin.jwt');
  await writeFile(tokenFile, await admin.token({ lifetimeS: 900 }));
  kbs = await startKbsProcess({ dataDir: join(dir, 'kbs'), adminPublicKeyFile: admin.publicKeyFile, tls: pki, logLevel: 'info' });
}, 120_000);

afterAll(async () => {
  await kbs?.stop();
  await swtpm?.stop();
  if (dir !== undefined) await rm(dir, { recursive: true, force: true });
});

describe('the KBS over HTTPS', () => {
  it('serves https and logs the certificate it loaded (never key material)', () => {
    expect(kbs.url).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
    const out = kbs.proc.output();
    expect(out).toContain('"msg":"TLS certificate loaded"');
    expect(out).not.toContain('PRIVATE KEY');
    expect(out).not.toContain('INSECURE');
  });

  it('happy path: the owner (CLI, --cert-file) trusts the node, the agent (--cert-file) attests and gets the secret', async () => {
    const ca = await keyhold(['--cert-file', pki.caFile, 'ca', 'add', SWTPM_LOCALCA_ISSUER_CERT, SWTPM_LOCALCA_ROOT_CERT]);
    expect(ca.code, ca.stderr).toBe(0);
    const secretFile = join(dir, 'secret.txt');
    await writeFile(secretFile, SECRET);
    // KEYHOLD_KBS_CA works as --cert-file does.
    const put = await keyhold(['config', 'set-resource', '--path', 'default/key/tls', '--resource-file', secretFile], { KEYHOLD_KBS_CA: pki.caFile });
    expect(put.code, put.stderr).toBe(0);
    const got = await runNodeCli(AGENT_BIN, ['get-resource', 'kbs:///default/key/tls', ...agentArgs(kbs.url, ['--cert-file', pki.caFile])]);
    expect(got.code, got.stderr).toBe(0);
    expect(got.stdout).toBe(SECRET);
  });

  // SECURITY negative tests: no client trusts the KBS's certificate without being given its CA.
  it('a client without the CA is refused, and both CLIs say so plainly (pointing at --cert-file)', async () => {
    const cli = await keyhold(['config', 'get-reference-values']);
    expect(cli.code).toBe(1);
    expect(cli.stderr).toMatch(/the KBS certificate at 127\.0\.0\.1:\d+ is not trusted \((UNABLE_TO_VERIFY_LEAF_SIGNATURE|SELF_SIGNED_CERT_IN_CHAIN|UNABLE_TO_GET_ISSUER_CERT_LOCALLY)\)/);
    expect(cli.stderr).toMatch(/hint: give the CA that signed it with --cert-file FILE\.pem \(env KEYHOLD_KBS_CA\)/);
    expect(cli.stderr).not.toMatch(/wrong version number/i);
    const agent = await runNodeCli(AGENT_BIN, ['get-resource', 'kbs:///default/key/tls', ...agentArgs(kbs.url)]);
    expect(agent.code).toBe(1);
    expect(agent.stdout).toBe('');
    expect(agent.stderr).toMatch(/the KBS certificate at 127\.0\.0\.1:\d+ is not trusted \(\w+\)\n {2}hint: give the CA that signed it with --cert-file/);
    // Another CA is no better.
    const other = await createTlsPki(join(dir, 'other'), { name: 'other' });
    expect((await keyhold(['--cert-file', other.caFile, 'config', 'get-reference-values'])).stderr).toMatch(/is not trusted/);
    await expect(call(`${kbs.url}/healthz`)).rejects.toThrow();
  });

  it('an http:// URL against the https KBS gets a clear message (CLI and agent)', async () => {
    const httpUrl = kbs.url.replace(/^https:/, 'http:');
    const cli = await runNodeCli(CLI_BIN, ['--url', httpUrl, '--admin-token-file', tokenFile, 'config', 'get-reference-values']);
    expect(cli.code).toBe(1);
    expect(cli.stderr).toMatch(/the KBS at 127\.0\.0\.1:\d+ speaks HTTPS, not plain HTTP\n {2}hint: use https:\/\/127\.0\.0\.1:\d+/);
    const agent = await runNodeCli(AGENT_BIN, ['token', ...agentArgs(httpUrl)]);
    expect(agent.code).toBe(1);
    expect(agent.stderr).toMatch(/speaks HTTPS, not plain HTTP/);
  });

  it('the session cookie carries Secure (and HttpOnly, SameSite=Strict) over HTTPS', async () => {
    const r = await call(`${kbs.url}/kbs/v0/auth`, { ca: pki.caPem, method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ version: PROTOCOL_VERSION, tee: 'tpm', 'extra-params': {} }) });
    expect(r.status).toBe(200);
    const cookie = String(r.headers['set-cookie']);
    expect(cookie).toMatch(/^kbs-session-id=[0-9a-f]{32};/);
    expect(cookie).toMatch(/; Secure(;|$)/);
    expect(cookie).toMatch(/; HttpOnly/);
    expect(cookie).toMatch(/; SameSite=Strict/);
  });

  it('SIGHUP reloads the certificate without dropping the listener; a bad replacement is refused and the old one kept', async () => {
    const pid = kbs.proc.child.pid!;
    const before = await servedFingerprint(kbs.port, pki.caPem);
    expect(before).toBe(new X509Certificate(await (await import('node:fs/promises')).readFile(pki.serverCertFile)).fingerprint256);
    // A renewed certificate from another CA, RSA this time: written over the configured files.
    const renewed = await createTlsPki(join(dir, 'renewed'), { name: 'renewed', keyType: 'rsa' });
    await copyFile(renewed.serverCertFile, pki.serverCertFile);
    await copyFile(renewed.serverKeyFile, pki.serverKeyFile);
    process.kill(pid, 'SIGHUP');
    const want = new X509Certificate(await (await import('node:fs/promises')).readFile(renewed.serverCertFile)).fingerprint256;
    let served = '';
    for (let i = 0; i < 50 && served !== want; i++) {
      served = await servedFingerprint(kbs.port, renewed.caPem).catch(() => '');
      if (served !== want) await new Promise((r) => setTimeout(r, 100));
    }
    expect(served).toBe(want);
    // Same process, same port; the old CA no longer fits new connections.
    expect(kbs.proc.child.exitCode).toBeNull();
    expect(kbs.proc.child.pid).toBe(pid);
    await expect(servedFingerprint(kbs.port, pki.caPem)).rejects.toThrow();
    expect((await call(`${kbs.url}/healthz`, { ca: renewed.caPem })).status).toBe(200);

    // A key that does not belong to the certificate: refused on reload, the running pair stays.
    const stray = await createTlsPki(join(dir, 'stray'), { name: 'stray' });
    await copyFile(stray.serverKeyFile, pki.serverKeyFile);
    process.kill(pid, 'SIGHUP');
    for (let i = 0; i < 50 && !kbs.proc.output().includes('TLS reload refused'); i++) await new Promise((r) => setTimeout(r, 100));
    expect(kbs.proc.output()).toMatch(/SIGHUP: TLS reload refused; still serving the previous certificate/);
    expect(kbs.proc.output()).toContain('does not belong to the certificate');
    expect(await servedFingerprint(kbs.port, renewed.caPem)).toBe(want);
    // Put a matching pair back for the tests that follow.
    await copyFile(renewed.serverKeyFile, pki.serverKeyFile);
    pki = { ...pki, caFile: renewed.caFile, caPem: renewed.caPem };
    process.kill(pid, 'SIGHUP');
  });
});

describe('mutual TLS for the admin API ([admin] client_ca)', () => {
  let mtls: KbsProcess;
  let mtlsPki: TlsPki;
  let clients: ClientPki;
  let rogue: ClientPki;

  beforeAll(async () => {
    [mtlsPki, clients, rogue] = await Promise.all([createTlsPki(join(dir, 'mtls')), createClientPki(join(dir, 'clients')), createClientPki(join(dir, 'rogue'), { name: 'rogue' })]);
    mtls = await startKbsProcess({ dataDir: join(dir, 'kbs-mtls'), adminPublicKeyFile: admin.publicKeyFile, tls: mtlsPki, configToml: `[admin]\nclient_ca = ${JSON.stringify(clients.clientCaFile)}\n` });
  }, 60_000);
  afterAll(async () => {
    await mtls?.stop();
  });

  it('accepts an admin call with a client certificate from client_ca and a token', async () => {
    const r = await call(`${mtls.url}/kbs/v0/reference-value`, { ca: mtlsPki.caPem, cert: clients.clientCertPem, key: clients.clientKeyPem, headers: { authorization: `Bearer ${await admin.token()}` } });
    expect(r.status, r.text).toBe(200);
  });

  // SECURITY negative tests: with client_ca, a token alone (or a certificate from another CA) opens nothing.
  it('refuses admin calls without a client certificate, with one from another CA, and with a certificate but no token', async () => {
    const token = { authorization: `Bearer ${await admin.token()}` };
    const none = await call(`${mtls.url}/kbs/v0/reference-value`, { ca: mtlsPki.caPem, headers: token });
    expect(none.status).toBe(401);
    expect(none.json).toMatchObject({ type: expect.stringMatching(/AdminAuthAccess$/), detail: expect.stringMatching(/client certificate issued by this KBS's \[admin\] client_ca \(mutual TLS\): no client certificate was sent/) });
    const other = await call(`${mtls.url}/kbs/v0/resource/default/key/x`, { ca: mtlsPki.caPem, cert: rogue.clientCertPem, key: rogue.clientKeyPem, method: 'POST', headers: token, body: 'evil' });
    expect(other.status).toBe(401);
    expect((other.json as { detail: string }).detail).toMatch(/the client certificate was refused \(UNABLE_TO_VERIFY_LEAF_SIGNATURE|UNABLE_TO_GET_ISSUER_CERT/);
    const noToken = await call(`${mtls.url}/kbs/v0/reference-value`, { ca: mtlsPki.caPem, cert: clients.clientCertPem, key: clients.clientKeyPem });
    expect(noToken.status).toBe(401);
  });

  it('the keyhold CLI presents a client certificate with --client-cert/--client-key (or KEYHOLD_CLIENT_CERT/KEY)', async () => {
    const base = ['--url', mtls.url, '--cert-file', mtlsPki.caFile, '--admin-token-file', tokenFile];
    const ok = await runNodeCli(CLI_BIN, [...base, '--client-cert', clients.clientCertFile, '--client-key', clients.clientKeyFile, 'config', 'get-reference-values']);
    expect(ok.code, ok.stderr).toBe(0);
    const byEnv = await runNodeCli(CLI_BIN, [...base, 'config', 'get-reference-values'], { env: { KEYHOLD_CLIENT_CERT: clients.clientCertFile, KEYHOLD_CLIENT_KEY: clients.clientKeyFile } });
    expect(byEnv.code, byEnv.stderr).toBe(0);
  });

  // SECURITY negative tests: the CLI without a certificate (or with half of one) is refused, and says why.
  it('the keyhold CLI without a client certificate is refused (exit 3) with a hint; a certificate without its key is a usage error', async () => {
    const base = ['--url', mtls.url, '--cert-file', mtlsPki.caFile, '--admin-token-file', tokenFile];
    const none = await runNodeCli(CLI_BIN, [...base, 'config', 'get-reference-values']);
    expect(none.code).toBe(3);
    expect(none.stderr).toMatch(/no client certificate was sent[\s\S]*hint: .*--client-cert and --client-key/);
    const rogueCert = await runNodeCli(CLI_BIN, [...base, '--client-cert', rogue.clientCertFile, '--client-key', rogue.clientKeyFile, 'config', 'get-reference-values']);
    expect(rogueCert.code).toBe(3);
    const half = await runNodeCli(CLI_BIN, [...base, '--client-cert', clients.clientCertFile, 'config', 'get-reference-values']);
    expect(half.code).toBe(2);
    expect(half.stderr).toMatch(/--client-cert and --client-key together/);
  });

  it('attestation routes stay server-TLS only: /auth works without a client certificate', async () => {
    const r = await call(`${mtls.url}/kbs/v0/auth`, { ca: mtlsPki.caPem, method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ version: PROTOCOL_VERSION, tee: 'tpm', 'extra-params': {} }) });
    expect(r.status).toBe(200);
    expect((await call(`${mtls.url}/healthz`, { ca: mtlsPki.caPem })).status).toBe(200);
  });
});

describe('--insecure-http', () => {
  it('serves plain HTTP with a warning at start; its cookie has no Secure attribute', async () => {
    const plain = await startKbsProcess({ dataDir: join(dir, 'kbs-plain'), adminPublicKeyFile: admin.publicKeyFile });
    try {
      expect(plain.url).toMatch(/^http:/);
      expect(plain.proc.output()).toMatch(/"level":40.*INSECURE: serving plain HTTP/);
      const r = await call(`${plain.url}/kbs/v0/auth`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ version: PROTOCOL_VERSION, tee: 'tpm', 'extra-params': {} }) });
      expect(r.status).toBe(200);
      expect(String(r.headers['set-cookie'])).not.toMatch(/Secure/);
    } finally {
      await plain.stop();
    }
  });
});
