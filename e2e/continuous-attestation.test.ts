/**
 * Issue 13 end to end: `keyhold-agent run` as its own process attests a swtpm every 2 s against the
 * KBS process (EK identity through swtpm's local CA), keeps a node certificate in --node-cert-dir
 * and tells its state on a health endpoint and a status file. The owner pins PCR 16; the test
 * extends it with tpm2_pcrextend; within an interval the node is banned with the PCR named, the
 * daemon drops its certificate and key, releases and renewals are refused, and a local webhook
 * receiver gets a `node.banned` event whose HMAC signature verifies. `keyhold node unban` plus a
 * re-pinned reference value lets it recover with a new key and certificate. The certificate chains
 * to GET /kbs/v0/node-ca (openssl verify), carries the node's SPIFFE ID, and its key answers SPIRE's
 * x509pop challenge (both halves written from SPIRE's code, e2e/harness/x509pop.ts). Refusals of the
 * node-certificate endpoint (key not bound, expired token, banned node) are driven by hand.
 */
import { execFile } from 'node:child_process';
import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import 'reflect-metadata';
import { Pkcs10CertificateRequestGenerator } from '@peculiar/x509';
import { decodeJwt, decodeProtectedHeader, SignJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { agentConfigFrom, openNodeSession } from '@keyhold/attestation-agent';
import { startSwtpm, type RunningSwtpm } from '@keyhold/test-harness';
import { createAdminKeys } from './harness/admin-keys.js';
import { startAgentDaemon, type AgentDaemon } from './harness/agent-daemon.js';
import { swtpmLocalCaFiles } from './harness/hardware-identity.js';
import { startKbsProcess, type KbsProcess } from './harness/kbs-process.js';
import { getResource, http, variantOf, type HttpAnswer } from './harness/raw-flow.js';
import { AGENT_BIN, CLI_BIN } from './harness/repo.js';
import { runNodeCli } from './harness/run-cli.js';
import { startWebhookReceiver, verifyDelivery, type WebhookReceiver } from './harness/webhook-receiver.js';
import { agentResponse, attestationData, defaultAgentId, serverChallenge, serverVerify } from './harness/x509pop.js';

const run = promisify(execFile);
const TRUST_DOMAIN = 'e2e.keyhold.test';
const PCR = 16;
const SECRET = 'keyhold-continuous-secret-7d41';
const SECRET_PATH = 'default/key/continuous';
const INTERVAL_MS = 2000;

let dir: string;
let swtpm: RunningSwtpm;
let kbs: KbsProcess;
let daemon: AgentDaemon;
let hooks: WebhookReceiver;
let hookSecret: Buffer;
let tokenFile: string;
let tokenKey: KeyObject;
let certDir: string;
let nodeId: string;
let nodeCaPem: string;
/** A token of this node whose attestation bound `boundKey` (taken before the ban). */
let boundToken: string;
let boundKey: KeyObject;

const owner = (...args: string[]) => runNodeCli(CLI_BIN, [...args.slice(0, 1), '--url', kbs.url, '--admin-token-file', tokenFile, ...args.slice(1)]);
const tpmEnv = () => ({ ...process.env, TPM2TOOLS_TCTI: swtpm.tcti });

async function pcrValue(): Promise<string> {
  const { stdout } = await run('tpm2_pcrread', [`sha256:${PCR}`], { env: tpmEnv() });
  const m = new RegExp(`${PCR}\\s*:\\s*0x([0-9A-Fa-f]{64})`).exec(stdout);
  if (m === null) throw new Error(`cannot read PCR ${PCR}: ${stdout}`);
  return (m[1] as string).toLowerCase();
}

async function setPcrReference(value: string): Promise<void> {
  const r = await owner('config', 'set-reference-value', '--name', `tpm_pcr${PCR}`, '--value', value);
  expect(r.code, r.stderr).toBe(0);
}

function spkiSha256(key: KeyObject): string {
  return createHash('sha256').update(createPublicKey(key).export({ format: 'der', type: 'spki' })).digest('hex');
}

/** A PEM CSR for `key` (P-256, self-signed), made with @peculiar/x509 as the agent makes its own. */
async function csrFor(key: KeyObject): Promise<string> {
  const { webcrypto } = await import('node:crypto');
  const alg = { name: 'ECDSA', namedCurve: 'P-256' };
  const privateKey = await webcrypto.subtle.importKey('pkcs8', key.export({ format: 'der', type: 'pkcs8' }), alg, false, ['sign']);
  const publicKey = await webcrypto.subtle.importKey('spki', createPublicKey(key).export({ format: 'der', type: 'spki' }), alg, true, ['verify']);
  const csr = await Pkcs10CertificateRequestGenerator.create({ name: 'CN=e2e', keys: { privateKey, publicKey } as any, signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' } as any });
  return csr.toString('pem');
}

function requestCertificate(token: string, csrPem: string): Promise<HttpAnswer> {
  return http(`${kbs.url}/kbs/v0/node-certificate`, { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: JSON.stringify({ csr: csrPem }) });
}

/** One handshake of this node by hand (the real agent library, the same TPM and AK as the daemon), binding `additional`. */
async function nodeToken(additional: string): Promise<string> {
  const session = await openNodeSession(agentConfigFrom({ url: kbs.url, tcti: swtpm.tcti, 'state-dir': join(dir, 'agent-state') }, {}), { additionalEvidence: () => additional });
  try {
    return await session.client.attest();
  } finally {
    // Release the TPM at once: the daemon attests on the same swtpm.
    await session.close();
  }
}

const binding = (key: KeyObject) => `{"keyhold.node-key":{"spki-sha256":"${spkiSha256(key)}"}}`;

async function openssl(...args: string[]): Promise<string> {
  const { stdout, stderr } = await run('openssl', args);
  return `${stdout}${stderr}`;
}

async function nodeStatus(): Promise<Record<string, any>> {
  const r = await owner('node', 'status', nodeId, '--json');
  expect(r.code, r.stderr).toBe(0);
  return JSON.parse(r.stdout) as Record<string, any>;
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'keyhold-e2e-continuous-'));
  swtpm = await startSwtpm({ ekCert: true });
  hooks = await startWebhookReceiver();
  hookSecret = Buffer.from('e2e-webhook-secret-2b9f0c');
  await writeFile(join(dir, 'webhook.secret'), `${hookSecret.toString()}\n`, { mode: 0o600 });
  tokenKey = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
  await writeFile(join(dir, 'token.key'), tokenKey.export({ format: 'pem', type: 'pkcs8' }), { mode: 0o600 });
  const admin = await createAdminKeys(dir);
  tokenFile = join(dir, 'admin.jwt');
  await writeFile(tokenFile, await admin.token({ lifetimeS: 900 }));
  const caDir = join(dir, 'localca');
  await swtpmLocalCaFiles(caDir);
  await mkdir(join(dir, 'kbs'));
  kbs = await startKbsProcess({
    dataDir: join(dir, 'kbs', 'data'),
    adminPublicKeyFile: admin.publicKeyFile,
    configToml: [
      `token_signing_key = "${join(dir, 'token.key')}"`,
      '[tpm]',
      'trusted_ak_list = false',
      `trust_domain = "${TRUST_DOMAIN}"`,
      `ek_ca_dir = "${caDir}"`,
      '[continuous]',
      'ban_on_failure = true',
      'interval = "2s"',
      '[[notify.webhook]]',
      `url = "${hooks.url}"`,
      `secret_file = "${join(dir, 'webhook.secret')}"`,
      '',
    ].join('\n'),
  });
  await writeFile(join(dir, 'secret.bin'), SECRET);
  const set = await owner('config', 'set-resource', '--path', SECRET_PATH, '--resource-file', join(dir, 'secret.bin'));
  expect(set.code, set.stderr).toBe(0);
  // The owner pins PCR 16 to what the machine measured.
  await setPcrReference(await pcrValue());
  const ek = await runNodeCli(CLI_BIN, ['ek-hash', '--tcti', swtpm.tcti, '--json']);
  expect(ek.code, ek.stderr).toBe(0);
  nodeId = (JSON.parse(ek.stdout) as { ekHash: string }).ekHash;
  certDir = join(dir, 'node-cert');
  daemon = await startAgentDaemon(['--url', kbs.url, '--tcti', swtpm.tcti, '--state-dir', join(dir, 'agent-state'), '--interval', '2s', '--node-cert-dir', certDir, '--delete-key-on-ban', '--log-level', 'info'], join(dir, 'status.json'));
  nodeCaPem = (await http(`${kbs.url}/kbs/v0/node-ca`)).text;
}, 120_000);

afterAll(async () => {
  await daemon?.stop();
  await kbs?.stop();
  await swtpm?.stop();
  await hooks?.close();
  if (dir !== undefined) await rm(dir, { recursive: true, force: true });
});

describe('keyhold-agent run: continuous attestation and node certificates', () => {
  it('attests every interval and keeps a node certificate that chains to node-ca, names the node and answers an x509pop challenge', async () => {
    await expect.poll(async () => (await daemon.status())?.certificate?.serial, { timeout: 30_000, interval: 200 }).toBeDefined();
    const status = (await daemon.status()) as Record<string, any>;
    expect(status).toMatchObject({ attested: true, state: 'attested', nodeId, earStatus: 'affirming', spiffeId: `spiffe://${TRUST_DOMAIN}/keyhold/node/tpm/${nodeId}` });
    const health = await daemon.health();
    expect(health.code).toBe(200);
    expect(health.json).toMatchObject({ attested: true, nodeId });
    // One log line per attestation, one per 2 s.
    await expect.poll(() => daemon.logs().filter((l) => l['msg'] === 'attested').length, { timeout: 15_000 }).toBeGreaterThanOrEqual(3);
    const attested = daemon.logs().filter((l) => l['msg'] === 'attested');
    expect(attested[0]).toMatchObject({ level: 30, node: nodeId, status: 'affirming' });
    expect(JSON.stringify(daemon.logs())).not.toMatch(/eyJ[A-Za-z0-9_-]{20,}\.|PRIVATE KEY/);

    // The files SPIRE's x509pop agent plugin reads.
    expect((await stat(join(certDir, 'key.pem'))).mode & 0o777).toBe(0o600);
    const certPem = await readFile(join(certDir, 'cert.pem'), 'utf8');
    const bundlePem = await readFile(join(certDir, 'bundle.pem'), 'utf8');
    expect(nodeCaPem).toMatch(/^-----BEGIN CERTIFICATE-----/);
    expect(bundlePem.replace(/\s+/g, '')).toBe(nodeCaPem.replace(/\s+/g, ''));
    await writeFile(join(dir, 'node-ca.pem'), nodeCaPem);
    expect(await openssl('verify', '-CAfile', join(dir, 'node-ca.pem'), join(certDir, 'cert.pem'))).toMatch(/cert\.pem: OK/);
    const text = await openssl('x509', '-in', join(certDir, 'cert.pem'), '-noout', '-text');
    expect(text).toContain(`URI:spiffe://${TRUST_DOMAIN}/keyhold/node/tpm/${nodeId}`);
    expect(text).toMatch(/X509v3 Key Usage: critical\s+Digital Signature/);
    expect(text).toMatch(/TLS Web Client Authentication/);
    // Its key is the daemon's, and the daemon's key is the one its attestations bound.
    const key = createPrivateKey(await readFile(join(certDir, 'key.pem')));
    const pub = (await openssl('x509', '-in', join(certDir, 'cert.pem'), '-noout', '-pubkey')).trim();
    expect(pub).toBe((createPublicKey(key).export({ format: 'pem', type: 'spki' }) as string).trim());

    // SPIRE's x509pop: the server (ca_bundle_path = GET /kbs/v0/node-ca) challenges, the key answers.
    const data = attestationData(certPem, bundlePem);
    const { leaf, challenge } = serverChallenge(data, nodeCaPem);
    expect(challenge.ecdsa_signature?.nonce).toBeDefined();
    serverVerify(leaf, challenge, agentResponse(key, challenge));
    // Another key does not answer for this certificate; a short response nonce is refused.
    expect(() => serverVerify(leaf, challenge, agentResponse(generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey, challenge))).toThrow(/ECDSA signature verify failed/);
    const short = agentResponse(key, challenge);
    expect(() => serverVerify(leaf, challenge, { ...short, ecdsa_signature: { ...short.ecdsa_signature!, nonce: Buffer.alloc(16).toString('base64') } })).toThrow(/invalid response nonce/);
    // Against another CA's bundle the certificate does not attest.
    await openssl('req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', join(dir, 'other-ca.key'), '-out', join(dir, 'other-ca.pem'), '-subj', '/CN=other CA', '-days', '1');
    expect(() => serverChallenge(data, '')).toThrow(/no trusted issuer/);
    const otherCaPem = await readFile(join(dir, 'other-ca.pem'), 'utf8');
    expect(() => serverChallenge(data, otherCaPem)).toThrow(/no trusted issuer/);
    // The agent id SPIRE assigns by default: the leaf's SHA-1 fingerprint (changes with every certificate).
    expect(defaultAgentId('spire.example', leaf)).toMatch(/^spiffe:\/\/spire\.example\/spire\/agent\/x509pop\/[0-9a-f]{40}$/);
    // The README's stable agent_path_template "/keyhold/node/tpm/{{ .Subject.CommonName }}" rests on CN = the node id.
    expect(leaf.subject.split('\n')).toEqual(expect.arrayContaining([`CN=${nodeId}`, 'OU=tpm', 'O=keyhold']));

    // The owner's view of the node.
    const view = await nodeStatus();
    expect(view.node).toMatchObject({ nodeId, state: 'active', spiffeId: `spiffe://${TRUST_DOMAIN}/keyhold/node/tpm/${nodeId}` });
    expect((view.node.certificates as { serial: string }[]).map((c) => c.serial.toLowerCase())).toContain(status.certificate.serial);
    const table = await owner('node', 'status');
    expect(table.code, table.stderr).toBe(0);
    expect(table.stdout).toMatch(new RegExp(`^${nodeId}\\s+active\\s+affirming`, 'm'));
  });

  it('certifies only the key the attestation bound, and refuses a token past its expiry', async () => {
    boundKey = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
    boundToken = await nodeToken(binding(boundKey));
    const claims = decodeJwt(boundToken) as any;
    expect(claims.submods.cpu0['ear.veraison.annotated-evidence']['keyhold.node-key']).toEqual({ 'spki-sha256': spkiSha256(boundKey) });
    const other = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
    const notBound = await requestCertificate(boundToken, await csrFor(other));
    expect({ status: notBound.status, variant: variantOf(notBound) }).toEqual({ status: 403, variant: 'PolicyDeny' });
    expect(notBound.text).not.toContain('BEGIN CERTIFICATE');
    const unboundToken = await nodeToken('');
    expect((await requestCertificate(unboundToken, await csrFor(boundKey))).status).toBe(403);
    // The same token re-signed by the KBS's own token key, but expired a minute ago.
    const header = decodeProtectedHeader(boundToken);
    const expired = await new SignJWT({ ...claims, iat: claims.iat - 600, exp: Math.floor(Date.now() / 1000) - 60 }).setProtectedHeader(header as any).sign(tokenKey);
    const late = await requestCertificate(expired, await csrFor(boundKey));
    expect(late.status).toBe(401);
    // The positive control: the bound key with its own live token is certified.
    const ok = await requestCertificate(boundToken, await csrFor(boundKey));
    expect(ok.status, ok.text).toBe(200);
    const answer = ok.json as { certificate: string; chain: string; spiffeId: string };
    expect(answer.spiffeId).toBe(`spiffe://${TRUST_DOMAIN}/keyhold/node/tpm/${nodeId}`);
    await writeFile(join(dir, 'hand.pem'), answer.certificate);
    expect(await openssl('verify', '-CAfile', join(dir, 'node-ca.pem'), join(dir, 'hand.pem'))).toMatch(/OK/);
  });

  it('a changed PCR bans the node within an interval: not attested at once, certificate and key gone, releases and renewals refused, webhook told', async () => {
    const before = (await daemon.status()) as Record<string, any>;
    const bannedSeenBefore = hooks.deliveries.length;
    await run('tpm2_pcrextend', [`${PCR}:sha256=${'5a'.repeat(32)}`], { env: tpmEnv() });
    const extendedAt = Date.now();
    await expect.poll(async () => (await daemon.status())?.state, { timeout: 20_000, interval: 100 }).toBe('banned');
    const bannedAfterMs = Date.now() - extendedAt;
    console.log(`continuous-attestation e2e: banned ${bannedAfterMs} ms after tpm2_pcrextend (interval ${INTERVAL_MS} ms)`);
    const status = (await daemon.status()) as Record<string, any>;
    expect(status).toMatchObject({ attested: false, state: 'banned' });
    expect(status.reason).toMatch(new RegExp(`pcr${PCR}`));
    expect(status.validUntil).toBeUndefined();
    expect((await daemon.health()).code).toBe(503);
    // Nothing vouches for the node any more: cert.pem removed, and key.pem (--delete-key-on-ban).
    await expect(stat(join(certDir, 'cert.pem'))).rejects.toMatchObject({ code: 'ENOENT' });
    await expect(stat(join(certDir, 'key.pem'))).rejects.toMatchObject({ code: 'ENOENT' });
    expect(daemon.logs().find((l) => l['msg'] === 'attestation refused')).toMatchObject({ banned: true, type: 'NodeBanned', certRemoved: true, keyDeleted: true });
    expect(before.state).toBe('attested');

    // The KBS: banned, with the PCR named; the node's earlier token releases and renews nothing.
    const view = await nodeStatus();
    expect(view.node.state).toBe('banned');
    expect(view.node.banned.reason).toMatch(new RegExp(`pcr${PCR}`));
    expect((view.history as { kind: string; status?: string }[]).some((h) => h.kind === 'attest')).toBe(true);
    const renew = await requestCertificate(boundToken, await csrFor(boundKey));
    expect({ status: renew.status, variant: variantOf(renew) }).toEqual({ status: 403, variant: 'NodeBanned' });
    const release = await getResource(kbs.url, SECRET_PATH, { bearer: boundToken });
    expect(release.status).toBe(403);
    expect(release.text).not.toContain(SECRET);
    const cli = await runNodeCli(AGENT_BIN, ['get-resource', `kbs:///${SECRET_PATH}`, '--url', kbs.url, '--tcti', swtpm.tcti, '--state-dir', join(dir, 'agent-state')]);
    expect(cli.code, cli.stderr).toBe(3);
    expect(cli.stdout).toBe('');
    expect(cli.stderr).toContain('(NodeBanned)');

    // The webhook receiver got a node.banned event whose signature verifies (and a tampered copy does not).
    await expect.poll(() => hooks.deliveries.slice(bannedSeenBefore).some((d) => d.headers['keyhold-event-type'] === 'node.banned'), { timeout: 20_000 }).toBe(true);
    const delivery = hooks.deliveries.slice(bannedSeenBefore).find((d) => d.headers['keyhold-event-type'] === 'node.banned')!;
    const event = verifyDelivery(delivery, hookSecret);
    expect(event).toMatchObject({ type: 'node.banned', node: nodeId, spiffeId: `spiffe://${TRUST_DOMAIN}/keyhold/node/tpm/${nodeId}` });
    expect(String(event['reason'])).toMatch(new RegExp(`pcr${PCR}`));
    expect(() => verifyDelivery({ ...delivery, body: Buffer.from(delivery.body.toString().replace('node.banned', 'node.recovered')) }, hookSecret)).toThrow(/does not verify/);
    expect(() => verifyDelivery(delivery, Buffer.from('another secret'))).toThrow(/does not verify/);
  });

  it('unban and a re-pinned reference value let it recover: active again, a new key certified', async () => {
    await setPcrReference(await pcrValue());
    const r = await owner('node', 'unban', nodeId);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(new RegExp(`^unbanned ${nodeId}`));
    await expect.poll(async () => {
      const s = await daemon.status();
      return s?.attested === true && s.certificate?.serial !== undefined;
    }, { timeout: 30_000, interval: 200 }).toBe(true);
    const status = (await daemon.status()) as Record<string, any>;
    expect((await daemon.health()).code).toBe(200);
    const key = createPrivateKey(await readFile(join(certDir, 'key.pem')));
    expect(daemon.logs().some((l) => String(l['msg']).startsWith('new node key made'))).toBe(true);
    expect(await openssl('verify', '-CAfile', join(dir, 'node-ca.pem'), join(certDir, 'cert.pem'))).toMatch(/OK/);
    const pub = (await openssl('x509', '-in', join(certDir, 'cert.pem'), '-noout', '-pubkey')).trim();
    expect(pub).toBe((createPublicKey(key).export({ format: 'pem', type: 'spki' }) as string).trim());
    const view = await nodeStatus();
    expect(view.node.state).toBe('active');
    expect((view.node.certificates as { serial: string }[]).map((c) => c.serial.toLowerCase())).toContain(status.certificate.serial);
    // Subscribers were told of the unban (and of the recovery, when the KBS sends it), signed as before.
    await expect.poll(() => hooks.deliveries.some((d) => d.headers['keyhold-event-type'] === 'node.unbanned'), { timeout: 20_000 }).toBe(true);
    for (const d of hooks.deliveries.filter((x) => /^node\.(unbanned|recovered)$/.test(String(x.headers['keyhold-event-type'])))) expect(verifyDelivery(d, hookSecret)).toMatchObject({ node: nodeId });
    const secret = await runNodeCli(AGENT_BIN, ['get-resource', `kbs:///${SECRET_PATH}`, '--url', kbs.url, '--tcti', swtpm.tcti, '--state-dir', join(dir, 'agent-state')]);
    expect(secret.code, secret.stderr).toBe(0);
    expect(secret.stdout).toBe(SECRET);
  });

  it('SIGTERM: exits 0, the status says stopped, the TPM is free', async () => {
    const code = await daemon.stop();
    expect(code, daemon.proc.output().slice(-2000)).toBe(0);
    expect(await daemon.status()).toMatchObject({ state: 'stopped', attested: false });
    expect(daemon.logs().at(-1)).toMatchObject({ msg: 'keyhold-agent run: stopped' });
    await expect(pcrValue()).resolves.toMatch(/^[0-9a-f]{64}$/);
  });
});
