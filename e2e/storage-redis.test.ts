/**
 * Issue 6 through the KBS: with the Redis backend a stored secret never reaches Redis in plaintext,
 * and a Redis outage turns releases into 503 + error body (no crash, no secret) until Redis is back,
 * without restarting the KBS. Attestation uses the agent library's software TPM (its AK is trusted
 * by the owner), since this test is about storage.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { flattenedDecrypt, type FlattenedJWE } from 'jose';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { createSoftwareTpm, loadOrCreateAk, tpm2bPublicToSpkiDer, type TpmDevice, type TpmKey } from '@keyhold/attestation-agent';
import { startRedis, type RedisServer } from '@keyhold/test-harness';
import { createAdminKeys } from './harness/admin-keys.js';
import { startKbsProcess, type KbsProcess } from './harness/kbs-process.js';
import { attest, auth, buildAttestation, getResource, http, variantOf } from './harness/raw-flow.js';

const SECRET = 'redis-backed-secret-a1b2c3d4e5f6';
let dir: string;
let redis: RedisServer;
let kbs: KbsProcess;
let tpm: TpmDevice;
let ak: TpmKey;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'keyhold-redis-e2e-'));
  redis = await startRedis({ args: ['--appendonly', 'yes', '--appendfsync', 'always'] });
  const admin = await createAdminKeys(dir);
  kbs = await startKbsProcess({
    dataDir: join(dir, 'kbs'),
    adminPublicKeyFile: admin.publicKeyFile,
    configToml: `rotation_check_interval_ms = 200\n[storage]\nbackend = "redis"\nurl = "${redis.url}"\noperation_timeout_ms = 1000\n`,
  });
  tpm = createSoftwareTpm();
  ak = (await loadOrCreateAk(tpm, { persistentHandle: 0x81010002, persist: true })).ak;
  const headers = { authorization: `Bearer ${await admin.token({ lifetimeS: 600 })}` };
  adminHeaders = headers;
  const payload = Buffer.from(JSON.stringify({ trusted_ak: [Buffer.from(tpm2bPublicToSpkiDer(ak.publicArea)).toString('base64')] })).toString('base64');
  expect((await http(`${kbs.url}/kbs/v0/reference-value`, { method: 'POST', headers: { ...headers, 'content-type': 'application/json' }, body: JSON.stringify({ version: '0.1.0', type: 'sample', payload }) })).status).toBe(200);
  const put = await http(`${kbs.url}/kbs/v0/resource/default/key/redis`, { method: 'POST', headers, body: SECRET });
  expect(put.status, put.text).toBe(200);
}, 60_000);

afterAll(async () => {
  await kbs?.stop();
  await redis?.stop();
  await tpm?.close();
  if (dir !== undefined) await rm(dir, { recursive: true, force: true });
});

let adminHeaders: Record<string, string>;

async function release(path = 'default/key/redis'): Promise<{ status: number; text: string; secret?: string; variant?: string }> {
  const s = await auth(kbs.url);
  const a = await buildAttestation(tpm, ak, s.nonce);
  const r = await attest(kbs.url, s.cookie, a.body);
  expect(r.status, r.text).toBe(200);
  const res = await getResource(kbs.url, path, { cookie: s.cookie });
  if (res.status !== 200) return { status: res.status, text: res.text, ...(variantOf(res) !== undefined ? { variant: variantOf(res)! } : {}) };
  const { plaintext } = await flattenedDecrypt(res.json as FlattenedJWE, a.teeKey.privateKey);
  return { status: 200, text: res.text, secret: Buffer.from(plaintext).toString('hex') };
}

it('releases a Redis-backed secret, and Redis holds no plaintext of it', async () => {
  expect((await release()).secret).toBe(Buffer.from(SECRET).toString('hex'));
  const client = new Redis(redis.url);
  try {
    const needles = [SECRET, Buffer.from(SECRET).toString('base64'), Buffer.from(SECRET).toString('hex'), Buffer.from(SECRET).toString('base64url')];
    const keys = await client.keys('*');
    expect(keys.length).toBeGreaterThan(0);
    let dumped = '';
    for (const k of keys) {
      const type = await client.type(k);
      const v =
        type === 'string' ? [await client.getBuffer(k)] :
        type === 'hash' ? Object.values(await client.hgetallBuffer(k)) :
        type === 'list' ? await client.lrangeBuffer(k, 0, -1) :
        type === 'set' ? await client.smembersBuffer(k) :
        type === 'zset' ? await client.zrangeBuffer(k, 0, -1) : [];
      dumped += k + v.map((b) => (b === null ? '' : b.toString('latin1'))).join('');
    }
    expect(dumped.length).toBeGreaterThan(SECRET.length);
    for (const n of needles) expect(dumped).not.toContain(n);
  } finally {
    client.disconnect();
  }
});

it('answers 503 with the error body while Redis is down and recovers when it returns', async () => {
  await redis.kill();
  try {
    for (let i = 0; i < 3; i++) {
      const t0 = Date.now();
      const r = await release();
      expect(r.status).toBe(503);
      expect(r.variant).toBe('StorageUnavailable');
      expect(r.text).not.toContain(SECRET);
      expect(Date.now() - t0).toBeLessThan(10_000);
    }
    // The KBS logs which store failed, where it is and why (issue 15), not only STORAGE_UNAVAILABLE.
    const line = kbs.proc
      .output()
      .split('\n')
      .find((l) => l.includes('"msg":"storage unavailable"'));
    expect(line, kbs.proc.output().slice(-2000)).toBeDefined();
    const logged = JSON.parse(line!) as { code: string; storage: { store: string; endpoint: string; causes: { name: string; code?: string }[] } };
    expect(logged.code).toBe('STORAGE_UNAVAILABLE');
    expect(logged.storage.endpoint).toBe(redis.url.replace(/\/$/, ''));
    expect(logged.storage.store).toBe('secrets');
    expect(logged.storage.causes.map((c) => c.code)).toContain('KMS_UNAVAILABLE');
    expect(line).not.toContain(SECRET);
  } finally {
    await redis.restart();
  }
  // Same KBS process, no restart: the next release works (bounded reconnect).
  let last;
  for (let i = 0; i < 20; i++) {
    last = await release();
    if (last.status === 200) break;
    await new Promise((r) => setTimeout(r, 250));
  }
  expect(last?.secret).toBe(Buffer.from(SECRET).toString('hex'));
  expect(kbs.proc.child.exitCode).toBeNull();
});

it('rotates a generated key on schedule; older versions stay retrievable by version', async () => {
  const gen = await http(`${kbs.url}/kbs/v0/resource/default/key/rotating?generate=32&rotation_period_ms=1000&keep=5`, { method: 'POST', headers: adminHeaders });
  expect(gen.status, gen.text).toBe(200);
  expect((gen.json as { version: number }).version).toBe(1);
  const v1 = await release('default/key/rotating?version=1');
  expect(v1.secret).toMatch(/^[0-9a-f]{64}$/);
  let latest = await release('default/key/rotating');
  const deadline = Date.now() + 15_000;
  while (latest.secret === v1.secret && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 300));
    latest = await release('default/key/rotating');
  }
  expect(latest.status).toBe(200);
  expect(latest.secret).not.toBe(v1.secret);
  expect((await release('default/key/rotating?version=1')).secret).toBe(v1.secret);
  expect((await release('default/key/rotating?version=2')).secret).toMatch(/^[0-9a-f]{64}$/);
  // A plain (not generated) resource cannot be rotated.
  const bad = await http(`${kbs.url}/kbs/v0/resource/default/key/redis?rotate=1`, { method: 'POST', headers: adminHeaders });
  expect(bad.status).toBe(400);
  const missing = await release('default/key/rotating?version=99');
  expect(missing.status).toBe(404);
});
