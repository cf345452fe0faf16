/**
 * Issue 5 through the built `keyhold-kbs` process and the `keyhold` CLI process: admin identities
 * with roles and repository limits (the ACL matrix over HTTP), hostile admin tokens, CEL policies
 * uploaded through the CLI (compile error with position, deny, the SPIFFE identity rule carried in
 * init-data bound into PCR8), two owners' scoped policies, the audit trail verified (and a middle
 * record edited, detected by `keyhold audit --verify`), /metrics, and 429 under a burst.
 * Attestation uses the agent library's software TPM and KbsClient (this test is about owners).
 */
import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SignJWT, base64url, decodeJwt } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  KbsClient,
  KbsClientError,
  TpmAttester,
  createSoftwareTpm,
  ensureInitDataBound,
  loadOrCreateAk,
  tpm2bPublicToSpkiDer,
  type TpmDevice,
} from '@keyhold/attestation-agent';
import { parseInitData, parseResourcePath, PROTOCOL_VERSION } from '@keyhold/protocol';
import { startSwtpm } from '@keyhold/test-harness';
import { createAdminKeys, type AdminKeys } from './harness/admin-keys.js';
import { startKbsProcess, type KbsProcess } from './harness/kbs-process.js';
import { http, variantOf } from './harness/raw-flow.js';
import { AGENT_BIN, CLI_BIN, REPO_ROOT } from './harness/repo.js';
import { runNodeCli } from './harness/run-cli.js';

const SECRET_A = 'owner-a-secret-3f9c2e71';
const SECRET_B = 'owner-b-secret-8d14aa60';
const SECRET_MARS = 'mars-mission-secret-55e0';
const ALLOWED_ID = 'spiffe://openshift.space-x.com/region/us-ykt/cluster_name/css/ns/space/sa/nasa/pod_name/mars-mission-7874fd667c-72mtp';
const REFUSED_IDS = [ALLOWED_ID.replace('region/us-ykt', 'region/eu-de'), ALLOWED_ID.replace('sa/nasa', 'sa/esa')];

let dir: string;
let kbs: KbsProcess;
let root: AdminKeys;
const keys: Record<string, { key: KeyObject; alg: 'EdDSA' | 'ES256'; file: string }> = {};
const tokenFiles: Record<string, string> = {};
const nodes: { tpm: TpmDevice; client: KbsClient }[] = [];
const trustedAks: string[] = [];

async function adminToken(who: string, opts: { lifetimeS?: number } = {}): Promise<string> {
  if (who === 'root') return root.token({ lifetimeS: opts.lifetimeS ?? 600 });
  const k = keys[who]!;
  const now = Math.floor(Date.now() / 1000);
  return new SignJWT({})
    .setProtectedHeader({ alg: k.alg, kid: who })
    .setIssuedAt(now - 5)
    .setExpirationTime(now + (opts.lifetimeS ?? 600))
    .sign(k.key);
}

function keyhold(...args: string[]) {
  return runNodeCli(CLI_BIN, args, { env: { KEYHOLD_KBS_URL: kbs.url } });
}

/** A node: a fresh software TPM (PCR8 = 0), its AK trusted by the owner, init-data bound when given. */
async function node(workloadId?: string): Promise<KbsClient> {
  const tpm = createSoftwareTpm();
  const { ak } = await loadOrCreateAk(tpm, { persistentHandle: 0x81010002, persist: true });
  const payload = Buffer.from(JSON.stringify({ trusted_ak: [...trustedAks, Buffer.from(tpm2bPublicToSpkiDer(ak.publicArea)).toString('base64')] })).toString('base64');
  trustedAks.push(Buffer.from(tpm2bPublicToSpkiDer(ak.publicArea)).toString('base64'));
  const rv = await http(`${kbs.url}/kbs/v0/reference-value`, {
    method: 'POST',
    headers: { authorization: `Bearer ${await adminToken('root')}`, 'content-type': 'application/json' },
    body: JSON.stringify({ version: '0.1.0', type: 'sample', payload }),
  });
  expect(rv.status, rv.text).toBe(200);
  let initData;
  if (workloadId !== undefined) {
    initData = { format: 'toml' as const, body: `algorithm = "sha256"\nversion = "0.1.0"\n\n[data]\nworkload_id = "${workloadId}"\n` };
    expect(await ensureInitDataBound(tpm, parseInitData(initData).digest)).toBe('extended');
  }
  const client = new KbsClient({ url: kbs.url, attester: new TpmAttester(tpm, ak, []), teeKeyType: 'ec', timeoutMs: 10_000, ...(initData !== undefined ? { initData } : {}) });
  nodes.push({ tpm, client });
  return client;
}
async function fetchSecret(client: KbsClient, path: string): Promise<{ secret?: string; code?: string; status?: number; variant?: string; message?: string }> {
  try {
    return { secret: Buffer.from(await client.getResource(parseResourcePath(path))).toString('utf8') };
  } catch (err) {
    if (!(err instanceof KbsClientError)) throw err;
    return { code: err.code, ...(err.status !== undefined ? { status: err.status } : {}), ...(err.variant !== undefined ? { variant: err.variant } : {}), message: err.message };
  }
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'keyhold-owners-e2e-'));
  root = await createAdminKeys(dir);
  const ids: string[] = [];
  for (const [name, role, kind] of [
    ['alice', 'owner-a', 'ec'],
    ['bob', 'owner-b', 'ed25519'],
    ['audrey', 'auditor', 'ed25519'],
    ['mallory', 'owner-b', 'ed25519'],
  ] as const) {
    const pair = kind === 'ec' ? generateKeyPairSync('ec', { namedCurve: 'P-256' }) : generateKeyPairSync('ed25519');
    const pub = join(dir, `${name}.pub.pem`);
    const priv = join(dir, `${name}.pem`);
    await writeFile(pub, pair.publicKey.export({ format: 'pem', type: 'spki' }));
    await writeFile(priv, pair.privateKey.export({ format: 'pem', type: 'pkcs8' }), { mode: 0o600 });
    keys[name] = { key: pair.privateKey, alg: kind === 'ec' ? 'ES256' : 'EdDSA', file: priv };
    ids.push(`  { name = "${name}", public_key_file = "${pub}", role = "${role}" },`);
  }
  const ownerRole = (repo: string) => `[admin.roles.owner-${repo}]\nrepositories = ["${repo}"]\nrules = [ { methods = ["*"], path = "/kbs/v0/(resource|resource-policy|resources)/.*" } ]\n`;
  const toml = [
    '[admin]',
    'identities = [',
    ...ids,
    ']',
    ownerRole('a'),
    ownerRole('b'),
    '[rate_limit]',
    'auth_per_sec = 0.5',
    'auth_burst = 40',
    'admin_per_sec = 100',
    'admin_burst = 400',
    '',
  ].join('\n');
  await mkdir(join(dir, 'kbs'), { recursive: true });
  kbs = await startKbsProcess({ dataDir: join(dir, 'kbs'), adminPublicKeyFile: root.publicKeyFile, configToml: toml, logLevel: 'warn' });
  for (const who of ['root', 'alice', 'bob', 'audrey']) {
    tokenFiles[who] = join(dir, `${who}.jwt`);
    await writeFile(tokenFiles[who]!, await adminToken(who), { mode: 0o600 });
  }
  // Alice mints her own token with the CLI (ES256 key, kid = her identity name).
  const issued = await runNodeCli(CLI_BIN, ['token', 'issue', '--key', keys['alice']!.file, '--role', 'owner-a', '--kid', 'alice', '--lifetime', '10m']);
  expect(issued.code, issued.stderr).toBe(0);
  await writeFile(tokenFiles['alice']!, issued.stdout.trim(), { mode: 0o600 });
  for (const [who, path, value] of [
    ['alice', 'a/key/1', SECRET_A],
    ['bob', 'b/key/1', SECRET_B],
    ['root', 'mars/key/1', SECRET_MARS],
  ] as const) {
    const f = join(dir, `${path.replaceAll('/', '_')}.bin`);
    await writeFile(f, value);
    const r = await keyhold('config', '--admin-token-file', tokenFiles[who]!, 'set-resource', '--path', path, '--resource-file', f);
    expect(r.code, r.stderr).toBe(0);
  }
}, 60_000);

afterAll(async () => {
  for (const n of nodes) await n.tpm.close().catch(() => undefined);
  await kbs?.stop();
  if (dir !== undefined) await rm(dir, { recursive: true, force: true });
});

describe('admin identities, roles and repositories', () => {
  const matrix: [string, string, string, number][] = [
    ['root', 'GET', '/kbs/v0/resources', 200],
    ['root', 'GET', '/kbs/v0/policies', 200],
    ['root', 'GET', '/kbs/v0/reference-value', 200],
    ['alice', 'GET', '/kbs/v0/resources/a', 200],
    ['alice', 'GET', '/kbs/v0/resources/b', 403],
    ['alice', 'GET', '/kbs/v0/resources', 403],
    ['alice', 'POST', '/kbs/v0/resource/b/key/2', 403],
    ['alice', 'POST', '/kbs/v0/resource-policy', 403],
    ['alice', 'POST', '/kbs/v0/resource-policy/b', 403],
    ['alice', 'POST', '/kbs/v0/attestation-policy', 403],
    ['alice', 'GET', '/kbs/v0/audit', 403],
    ['bob', 'GET', '/kbs/v0/resource-policy/b', 200],
    ['bob', 'DELETE', '/kbs/v0/resource/a/key/1', 403],
    ['bob', 'GET', '/kbs/v0/reference-value', 403],
    ['audrey', 'GET', '/kbs/v0/audit', 200],
    ['audrey', 'GET', '/kbs/v0/resources', 403],
    ['audrey', 'POST', '/kbs/v0/resource/a/key/2', 403],
  ];
  it.each(matrix)('%s %s %s → %i', async (who, method, path, status) => {
    const headers: Record<string, string> = { authorization: `Bearer ${await adminToken(who)}` };
    let body: string | undefined;
    if (method === 'POST') {
      headers['content-type'] = path.includes('/resource/') ? 'application/octet-stream' : 'application/json';
      body = path.includes('/resource/') ? 'x' : JSON.stringify({ type: 'cel', policy: base64url.encode('true') });
    }
    const res = await http(`${kbs.url}${path}`, { method, headers, ...(body !== undefined ? { body } : {}) });
    expect(res.status, res.text).toBe(status);
    if (status === 403) expect(variantOf(res)).toBe('AdminAuthAccess');
  });

  const hostile: [string, () => Promise<string>][] = [
    ['forged (unknown key, kid alice)', () => new SignJWT({}).setProtectedHeader({ alg: 'ES256', kid: 'alice' }).setExpirationTime('5m').sign(generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey)],
    ['wrong key (mallory signs as bob)', () => new SignJWT({}).setProtectedHeader({ alg: 'EdDSA', kid: 'bob' }).setExpirationTime('5m').sign(keys['mallory']!.key)],
    ['expired', () => adminToken('bob', { lifetimeS: -120 })],
    ['alg none', async () => `${base64url.encode(JSON.stringify({ alg: 'none' }))}.${base64url.encode(JSON.stringify({ exp: 9_999_999_999, role: 'admin' }))}.`],
    [
      'HS256 keyed with the admin public key bytes',
      async () => new SignJWT({ role: 'admin' }).setProtectedHeader({ alg: 'HS256' }).setExpirationTime('5m').sign(new Uint8Array(await readFile(root.publicKeyFile))),
    ],
    ['no exp', () => new SignJWT({}).setProtectedHeader({ alg: 'EdDSA', kid: 'bob' }).sign(keys['bob']!.key)],
  ];
  it.each(hostile)('refuses a %s admin token with 401 AdminAuthAccess', async (_name, make) => {
    const res = await http(`${kbs.url}/kbs/v0/resources/b`, { headers: { authorization: `Bearer ${await make()}` } });
    expect(res.status, res.text).toBe(401);
    expect(variantOf(res)).toBe('AdminAuthAccess');
  });

  it('lists only the owner’s resources, as metadata, through the CLI', async () => {
    const r = await keyhold('config', '--admin-token-file', tokenFiles['alice']!, '--json', 'list-resources', '--repository', 'a');
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ resources: [{ path: 'a/key/1', version: 1 }] });
    expect(r.stdout).not.toContain(SECRET_A);
    const denied = await keyhold('config', '--admin-token-file', tokenFiles['alice']!, 'list-resources', '--repository', 'b');
    expect(denied.code).toBe(3);
    expect(denied.stderr).toMatch(/HTTP 403/);
  });
});

describe('policies', () => {
  it('refuses a policy that does not compile with 400, the position and the reason (CLI exit 1)', async () => {
    const bad = join(dir, 'bad.cel');
    await writeFile(bad, 'ear.status == "affirming" &&\n  init_data_claims.workload_id.startsWith(42)');
    const r = await keyhold('config', '--admin-token-file', tokenFiles['alice']!, 'set-resource-policy', '--policy-file', bad, '--repository', 'a');
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/HTTP 400/);
    expect(r.stderr).toMatch(/rule 2:\d+: /);
    const rego = await http(`${kbs.url}/kbs/v0/attestation-policy`, {
      method: 'POST',
      headers: { authorization: `Bearer ${await adminToken('root')}`, 'content-type': 'application/json' },
      body: JSON.stringify({ type: 'rego', policy_id: 'default_cpu', policy: base64url.encode('package policy\ndefault allow = true\n') }),
    });
    expect(rego.status).toBe(400);
    expect(rego.text).toMatch(/rego is not supported, use cel/);
  });

  it('names the attestation policy id and version in the token', async () => {
    const client = await node();
    const t0 = decodeJwt(await client.attest()) as { submods: { cpu0: Record<string, unknown> } };
    expect(t0.submods.cpu0['ear.appraisal-policy-id']).toBe('default@0');
    const r = await keyhold('config', '--admin-token-file', tokenFiles['root']!, '--json', 'set-attestation-policy', '--policy-file', join(REPO_ROOT, 'packages/kbs/policies/default-attestation.json'));
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ policy_id: 'default', version: 1 });
    try {
      const t1 = decodeJwt(await client.attest()) as { submods: { cpu0: Record<string, unknown> } };
      expect(t1.submods.cpu0['ear.appraisal-policy-id']).toBe('default@1');
      expect(t1.submods.cpu0['ear.status']).toBe('affirming');
    } finally {
      const d = await keyhold('config', '--admin-token-file', tokenFiles['root']!, 'delete-attestation-policy', '--id', 'default');
      expect(d.code, d.stderr).toBe(0);
    }
  });

  it('keeps two owners’ scoped policies apart; a deny is 403 PolicyDeny with the reason', async () => {
    const client = await node();
    expect((await fetchSecret(client, 'a/key/1')).secret).toBe(SECRET_A);
    expect((await fetchSecret(client, 'b/key/1')).secret).toBe(SECRET_B);
    const set = await keyhold('config', '--admin-token-file', tokenFiles['bob']!, 'set-resource-policy', '--deny-all', '--repository', 'b');
    expect(set.code, set.stderr).toBe(0);
    const denied = await fetchSecret(client, 'b/key/1');
    expect(denied).toMatchObject({ code: 'POLICY_DENY', status: 403, variant: 'PolicyDeny' });
    expect(denied.message).toMatch(/deny-all@1 \(policy rule evaluated to false\)/);
    // Owner b's deny-all does not affect owner a.
    expect((await fetchSecret(client, 'a/key/1')).secret).toBe(SECRET_A);
    const got = await keyhold('config', '--admin-token-file', tokenFiles['bob']!, '--json', 'get-resource-policy', '--repository', 'b');
    expect(JSON.parse(got.stdout)).toMatchObject({ id: 'deny-all', scope: 'repository', version: 1 });
    const back = await keyhold('config', '--admin-token-file', tokenFiles['bob']!, 'set-resource-policy', '--affirming', '--repository', 'b');
    expect(back.code, back.stderr).toBe(0);
    expect((await fetchSecret(client, 'b/key/1')).secret).toBe(SECRET_B);
  });

  it('releases by the SPIFFE identity rule carried in init-data (PCR8-bound): allowed and refused IDs', async () => {
    const sample = join(REPO_ROOT, 'packages/kbs/policies/spiffe-mars-mission.json');
    const set = await keyhold('config', '--admin-token-file', tokenFiles['root']!, 'set-resource-policy', '--policy-file', sample, '--repository', 'mars');
    expect(set.code, set.stderr).toBe(0);
    const allowed = await node(ALLOWED_ID);
    expect((await fetchSecret(allowed, 'mars/key/1')).secret).toBe(SECRET_MARS);
    for (const id of REFUSED_IDS) {
      const refused = await node(id);
      expect(await fetchSecret(refused, 'mars/key/1'), id).toMatchObject({ status: 403, variant: 'PolicyDeny' });
      // The same node is not affected elsewhere: repository a keeps its default policy.
      expect((await fetchSecret(refused, 'a/key/1')).secret).toBe(SECRET_A);
    }
    // A node without init-data has no workload ID at all.
    expect(await fetchSecret(await node(), 'mars/key/1')).toMatchObject({ status: 403, variant: 'PolicyDeny' });
  });
});

describe('node verbs of the owner CLI', () => {
  it('`keyhold attest` and `keyhold get-resource --path` run the agent against a swtpm', async () => {
    const tpm = await startSwtpm();
    try {
      const args = ['--url', kbs.url, '--tcti', tpm.tcti];
      const ak = await runNodeCli(AGENT_BIN, ['ak', '--json', ...args]);
      expect(ak.code, ak.stderr).toBe(0);
      trustedAks.push((JSON.parse(ak.stdout) as { ak_public: string }).ak_public);
      const set = await keyhold('config', '--admin-token-file', tokenFiles['root']!, 'set-reference-value', '--name', 'trusted_ak', ...trustedAks.flatMap((v) => ['--value', v]));
      expect(set.code, set.stderr).toBe(0);
      const t = await keyhold('attest', ...args);
      expect(t.code, t.stderr).toBe(0);
      expect((decodeJwt(t.stdout.trim()) as { submods: { cpu0: Record<string, unknown> } }).submods.cpu0['ear.status']).toBe('affirming');
      // As kbs-client: base64 and a newline (--raw for the bytes).
      const r = await keyhold('get-resource', '--path', 'a/key/1', ...args);
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout).toBe(`${Buffer.from(SECRET_A).toString('base64')}\n`);
      const raw = await keyhold('get-resource', 'kbs:///a/key/1', '--raw', ...args);
      expect(raw.stdout).toBe(SECRET_A);
      const usage = await keyhold('get-resource', ...args);
      expect(usage.code).toBe(2);
    } finally {
      await tpm.stop();
    }
  });
});

describe('audit trail and metrics', () => {
  it('serves the audit trail to the auditor; `keyhold audit --verify` checks it and detects an edited middle record', async () => {
    // An admin change whose handler writes no record of its own still gets a generic one.
    const allow = await http(`${kbs.url}/kbs/v0/admin/ek-allowlist`, {
      method: 'POST',
      headers: { authorization: `Bearer ${await adminToken('root')}`, 'content-type': 'application/json' },
      body: JSON.stringify({ ekHash: 'ab'.repeat(32) }),
    });
    expect(allow.status, allow.text).toBe(200);
    const remote = await keyhold('audit', '--url', kbs.url, '--admin-token-file', tokenFiles['audrey']!, '--verify', '--json');
    expect(remote.code, remote.stderr).toBe(0);
    const file = join(kbs.dataDir, 'audit.jsonl');
    const text = await readFile(file, 'utf8');
    for (const s of [SECRET_A, SECRET_B, SECRET_MARS]) expect(text).not.toContain(s);
    const lines = text.split('\n').filter((l) => l !== '');
    const kinds = new Set(lines.map((l) => (JSON.parse(l) as { kind: string }).kind));
    expect([...kinds].sort()).toEqual(['admin', 'attest', 'auth', 'deny', 'release']);
    expect(text).toMatch(/"action":"resource-policy.put:b","actor":"bob"|"actor":"bob".*"action":"resource-policy.put:b"/);
    expect(text).toContain('"action":"POST /kbs/v0/admin/ek-allowlist"');
    const copy = join(dir, 'audit-copy.jsonl');
    await writeFile(copy, `${lines.join('\n')}\n`);
    const ok = await keyhold('audit', '--file', copy, '--verify');
    expect(ok.code, ok.stderr).toBe(0);
    const mid = Math.floor(lines.length / 2);
    const rec = JSON.parse(lines[mid]!) as { seq: number; fields: Record<string, unknown> };
    rec.fields['verdict'] = rec.fields['verdict'] === 'allow' ? 'deny' : 'allow';
    lines[mid] = JSON.stringify(rec);
    await writeFile(copy, `${lines.join('\n')}\n`);
    const bad = await keyhold('audit', '--file', copy, '--verify');
    expect(bad.code).toBe(1);
    expect(`${bad.stdout}${bad.stderr}`).toContain(String(rec.seq));
  });

  it('exports Prometheus metrics', async () => {
    const m = await http(`${kbs.url}/metrics`);
    expect(m.status).toBe(200);
    expect(m.text).toMatch(/keyhold_kbs_releases_total\{repository="a"\} [1-9]/);
    expect(m.text).toMatch(/keyhold_kbs_policy_denials_total\{kind="resource",scope="repository"\} [1-9]/);
    expect(m.text).toMatch(/keyhold_kbs_attestations_total\{tee="tpm",status="affirming"\} [1-9]/);
    expect(m.text).toMatch(/keyhold_kbs_request_duration_seconds_count\{method="POST",route="\/kbs\/v0\/attest",status="200"\} [1-9]/);
  });
});

describe('rate limiting', () => {
  it('answers 429 RateLimited with retry-after to a burst of /auth from one address', async () => {
    const body = JSON.stringify({ version: PROTOCOL_VERSION, tee: 'tpm', 'extra-params': {} });
    const answers = await Promise.all(Array.from({ length: 60 }, () => http(`${kbs.url}/kbs/v0/auth`, { method: 'POST', headers: { 'content-type': 'application/json' }, body })));
    const limited = answers.filter((a) => a.status === 429);
    expect(limited.length).toBeGreaterThan(0);
    expect(answers.every((a) => a.status === 200 || a.status === 429)).toBe(true);
    expect(variantOf(limited[0]!)).toBe('RateLimited');
    expect(Number(limited[0]!.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
    const m = await http(`${kbs.url}/metrics`);
    expect(m.text).toMatch(/keyhold_kbs_rate_limit_hits_total\{scope="auth"\} [1-9]/);
  });
});
