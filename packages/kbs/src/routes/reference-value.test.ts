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
import { emptyRuntimePolicy } from '@keyhold/verifier';
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

/** A real AK-shaped key (DER SPKI, base64), as `keyhold-agent ak` prints one. */
const AK = generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey.export({ type: 'spki', format: 'der' }).toString('base64');

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
      expect((await call('POST', '/kbs/v0/reference-value', rvs({ trusted_ak: [AK] }))).status).toBe(200);
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

describe('reference values are validated at upload (issue 12)', () => {
  const detailOf = async (r: Response): Promise<string> => ((await r.json()) as { detail: string }).detail;
  const post = (values: Record<string, string[]>) => call('POST', '/kbs/v0/reference-value', rvs(values));
  const LONG = 'x'.repeat(5000);

  it('accepts what the appraisal can use', async () => {
    for (const ok of <Record<string, string[]>[]>[
      { tpm_pcr07: ['ab'.repeat(32), 'AB'.repeat(20)], pcr00: ['00'.repeat(48)], 'az-snp-vtpm_pcr23': ['ff'.repeat(64)] },
      { trusted_ak: [AK] },
      { trusted_ak: [] },
      { tpm_measured_boot: [JSON.stringify({ version: 1, secureBoot: true })] },
      { tpm_runtime_policy: [JSON.stringify(emptyRuntimePolicy('sha256')), JSON.stringify(emptyRuntimePolicy())] },
      { my_own_name: ['anything at all', LONG] },
    ]) {
      const r = await post(ok);
      expect(r.status, JSON.stringify(Object.keys(ok))).toBe(200);
    }
  });

  // SECURITY negative tests: a bad value would be stored and then fail (or silently not pin) every attestation.
  it.each([
    ['a PCR value that is not hex', { tpm_pcr07: ['zz'.repeat(32)] }, /^reference value tpm_pcr07: its value is not hex of a SHA-1\/256\/384\/512 PCR digest .*it has 64 characters/],
    ['a PCR value of no bank length', { tpm_pcr07: ['ab'.repeat(32), 'ab'.repeat(31)] }, /^reference value tpm_pcr07: value 2 of 2 is not hex/],
    ['a PCR index beyond 23', { tpm_pcr24: ['ab'.repeat(32)] }, /^reference value tpm_pcr24: PCR index must be two digits 00\.\.23/],
    ['a one-digit PCR index (never compared)', { tpm_pcr7: ['ab'.repeat(32)] }, /^reference value tpm_pcr7: PCR index must be two digits 00\.\.23 \(e\.g\. tpm_pcr07\)/],
    ['a pinned PCR without values', { pcr04: [] }, /^reference value pcr04: no values/],
    ['a measured-boot state that is not JSON', { tpm_measured_boot: [`{${LONG}`] }, /^reference value tpm_measured_boot: its value is not JSON$/],
    ['a measured-boot state that does not parse', { tpm_measured_boot: [JSON.stringify({ version: 2 })] }, /^reference value tpm_measured_boot: .*version/],
    ['two measured-boot states', { tpm_measured_boot: ['{}', '{}'] }, /^reference value tpm_measured_boot: must hold exactly one .*it has 2 values/],
    ['a runtime policy that does not parse', { tpm_runtime_policy: [JSON.stringify({ digests: { '/bin/sh': ['nothex'] } })] }, /^reference value tpm_runtime_policy: its value: /],
    ['a trusted_ak that is not base64', { trusted_ak: [AK, `${LONG}!`] }, /^reference value trusted_ak: value 2 of 2 is not standard base64/],
    ['a trusted_ak that is not a key', { trusted_ak: ['AAAA'] }, /^reference value trusted_ak: its value is not a DER SubjectPublicKeyInfo/],
    ['a trusted_ak of a key type no TPM makes', { trusted_ak: [generateKeyPairSync('ed25519').publicKey.export({ type: 'spki', format: 'der' }).toString('base64')] }, /^reference value trusted_ak: its value is a ed25519 key/],
  ])('refuses %s with 400 naming it, never echoing the value, storing nothing', async (_what, values, detail) => {
    const before = await names();
    const r = await post({ unrelated_name: ['v'], ...values });
    expect(r.status).toBe(400);
    const d = await detailOf(r);
    expect(d).toMatch(detail);
    expect(d.length).toBeLessThan(300);
    expect(d).not.toContain('xxxxxxxx');
    for (const v of Object.values(values).flat()) if (v.length > 8) expect(d).not.toContain(v);
    // The whole message is refused: not even the valid name beside it is stored.
    expect(await names()).toEqual(before);
  });
});
