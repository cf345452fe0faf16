/**
 * The lost-update regressions of issue 10 through `createApp` on the embedded state (real files
 * in a temp data dir): concurrent reference-value POSTs that all answered 200 must all be stored,
 * and a DELETE of `trusted_ak` racing an unrelated POST must stay deleted — also after the state
 * is closed and opened again (a restart).
 */
import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SignJWT } from 'jose';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { singleKeyAdminAuthorizer } from '../admin/single-key-authorizer.js';
import type { KbsDeps } from '../app-env.js';
import { createApp } from '../app.js';
import { defaultAttestationPolicy } from '../attestation/attestation-policy.js';
import { affirmingResourcePolicy } from '../release/resource-policy.js';
import { openEmbeddedState } from '../state/index.js';
import type { KbsState } from '../state/ports.js';
import { EarSigner } from '../token/ear-signer.js';

let dir: string;
let adminKey: KeyObject;
let deps: KbsDeps;
let state: KbsState;

const open = () => openEmbeddedState({ dataDir: join(dir, 'data'), sessionLimits: { maxSessions: 10, maxSessionBytes: 1 << 20 }, auditFile: null });

async function call(method: string, path: string, body?: unknown): Promise<Response> {
  const token = await new SignJWT({ role: 'admin' }).setProtectedHeader({ alg: 'EdDSA' }).setExpirationTime('5m').sign(adminKey);
  const app = createApp(deps);
  return app.request(path, {
    method,
    headers: { authorization: `Bearer ${token}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
  });
}

const rvs = (values: Record<string, string[]>) => ({ version: '0.1.0', type: 'sample', payload: Buffer.from(JSON.stringify(values)).toString('base64') });

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'keyhold-rv-race-'));
  const admin = generateKeyPairSync('ed25519');
  adminKey = admin.privateKey;
  state = await open();
  deps = {
    state,
    sessionTtlMs: 60_000,
    signer: await EarSigner.create({ privateKey: generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey, issuer: 'test', lifetimeMs: 60_000 }),
    appraisers: new Map(),
    attestationPolicy: defaultAttestationPolicy,
    resourcePolicy: affirmingResourcePolicy,
    resources: { get: async () => undefined, put: async () => ({ version: 1 }), delete: async () => false, generate: async () => ({ version: 1 }), rotate: async () => ({ version: 1 }) },
    adminAuth: singleKeyAdminAuthorizer(admin.publicKey),
    logger: pino({ level: 'silent' }),
    maxBodyBytes: 1 << 20,
    build: 'test',
  };
});

afterAll(async () => {
  await state?.close();
  await rm(dir, { recursive: true, force: true });
});

async function names(): Promise<Record<string, string[]>> {
  return (await (await call('GET', '/kbs/v0/reference-value')).json()) as Record<string, string[]>;
}

describe('reference values: no acknowledged write is lost', () => {
  it('24 concurrent POSTs of distinct names all answer 200 and are all stored, also after a restart', async () => {
    const answers = await Promise.all(Array.from({ length: 24 }, (_, i) => call('POST', '/kbs/v0/reference-value', rvs({ [`name_${i}`]: [`v${i}`] }))));
    expect(answers.map((a) => a.status)).toEqual(Array(24).fill(200));
    const want = Object.fromEntries(Array.from({ length: 24 }, (_, i) => [`name_${i}`, [`v${i}`]]));
    expect(await names()).toMatchObject(want);
    await state.close();
    state = await open();
    deps = { ...deps, state };
    expect(await names()).toMatchObject(want);
  });

  it('a DELETE of trusted_ak racing an unrelated POST stays deleted (and the POST is kept)', async () => {
    for (let round = 0; round < 10; round++) {
      expect((await call('POST', '/kbs/v0/reference-value', rvs({ trusted_ak: ['AAAA'] }))).status).toBe(200);
      const [del, post] = await Promise.all([call('DELETE', '/kbs/v0/reference-value/trusted_ak'), call('POST', '/kbs/v0/reference-value', rvs({ [`other_${round}`]: ['x'] }))]);
      expect([del.status, post.status]).toEqual([204, 200]);
      const now = await names();
      expect(now).not.toHaveProperty('trusted_ak');
      expect(now).toHaveProperty(`other_${round}`);
    }
    await state.close();
    state = await open();
    deps = { ...deps, state };
    expect(await names()).not.toHaveProperty('trusted_ak');
    expect((await call('DELETE', '/kbs/v0/reference-value/trusted_ak')).status).toBe(404);
  });

  // SECURITY negative test: reference names are bounded identifiers (they reach logs, audit records and backend keys).
  it('refuses names that are not plain identifiers', async () => {
    for (const bad of ['a b', '../x', 'x'.repeat(257), '', '{kh:refs}']) {
      const r = await call('POST', '/kbs/v0/reference-value', rvs({ [bad]: ['v'] }));
      expect(r.status, bad).toBe(400);
    }
    expect(Object.keys(await names()).some((k) => k.includes(' ') || k.includes('/'))).toBe(false);
  });
});
