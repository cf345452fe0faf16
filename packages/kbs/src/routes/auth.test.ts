// POST /kbs/v0/auth through createApp (in process): the /auth body cap (413), the session byte cap
// answering 429 TooManySessions, and the cookie's Secure attribute following the request's scheme.
import { generateKeyPairSync } from 'node:crypto';
import { pino } from 'pino';
import { afterAll, describe, expect, it } from 'vitest';
import { PROTOCOL_VERSION } from '@keyhold/protocol';
import { singleKeyAdminAuthorizer } from '../admin/single-key-authorizer.js';
import type { KbsDeps } from '../app-env.js';
import { createApp } from '../app.js';
import { defaultAttestationPolicy } from '../attestation/attestation-policy.js';
import { TpmAppraiser } from '../attestation/tpm/tpm-appraiser.js';
import { affirmingResourcePolicy } from '../release/resource-policy.js';
import { openMemoryState } from '../state/index.js';
import type { KbsState } from '../state/ports.js';
import { EarSigner } from '../token/ear-signer.js';

const states: KbsState[] = [];
afterAll(async () => {
  for (const s of states) await s.close();
});

async function app(limits: { maxSessions: number; maxSessionBytes: number }, over: Partial<KbsDeps> = {}) {
  const state = await openMemoryState({ sessionLimits: limits });
  states.push(state);
  const tpm = new TpmAppraiser({ trustedAkList: true });
  return createApp({
    state,
    sessionTtlMs: 60_000,
    signer: await EarSigner.create({ privateKey: generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey, issuer: 'test', lifetimeMs: 60_000 }),
    appraisers: new Map([[tpm.tee, tpm]]),
    attestationPolicy: defaultAttestationPolicy,
    resourcePolicy: affirmingResourcePolicy,
    resources: { get: async () => undefined, put: async () => ({ version: 1 }), delete: async () => false, generate: async () => ({ version: 1 }), rotate: async () => ({ version: 1 }) },
    adminAuth: singleKeyAdminAuthorizer(generateKeyPairSync('ed25519').publicKey),
    logger: pino({ level: 'silent' }),
    maxBodyBytes: 1 << 20,
    build: 'test',
    ...over,
  });
}

const authBody = (extra: Record<string, unknown> = {}) => JSON.stringify({ version: PROTOCOL_VERSION, tee: 'tpm', 'extra-params': extra });
const post = (a: Awaited<ReturnType<typeof app>>, body: string, base = 'http://kbs') => a.request(`${base}/kbs/v0/auth`, { method: 'POST', headers: { 'content-type': 'application/json' }, body });

describe('POST /kbs/v0/auth', () => {
  // SECURITY negative test: an unauthenticated client cannot make the KBS read (or keep) large bodies.
  it('refuses a body over the /auth cap (default 64 KiB) with 413, below the general body cap', async () => {
    const a = await app({ maxSessions: 100, maxSessionBytes: 1 << 20 });
    expect((await post(a, authBody({ pad: 'x'.repeat(60 * 1024) }))).status).toBe(200);
    const big = await post(a, authBody({ pad: 'x'.repeat(65 * 1024) }));
    expect(big.status).toBe(413);
    expect(await big.json()).toMatchObject({ type: expect.stringMatching(/PayloadTooLarge$/), detail: 'request body exceeds 65536 bytes' });
    const small = await app({ maxSessions: 100, maxSessionBytes: 1 << 20 }, { maxAuthBodyBytes: 4096 });
    expect((await post(small, authBody({ pad: 'x'.repeat(5000) }))).status).toBe(413);
  });

  // SECURITY negative test: pending sessions are capped in bytes, not only in count.
  it('answers 429 TooManySessions (with retry-after) once pending sessions hold max_session_bytes', async () => {
    const a = await app({ maxSessions: 100_000, maxSessionBytes: 2000 });
    const statuses: number[] = [];
    let last: Response | undefined;
    for (let i = 0; i < 40; i++) {
      last = await post(a, authBody({ pad: 'y'.repeat(30 * 1024) }));
      statuses.push(last.status);
    }
    const opened = statuses.filter((s) => s === 200).length;
    expect(opened).toBeGreaterThan(3);
    expect(opened).toBeLessThan(20);
    expect(statuses.slice(opened).every((s) => s === 429)).toBe(true);
    expect(last!.headers.get('retry-after')).toBe('1');
    expect(await last!.json()).toMatchObject({ type: expect.stringMatching(/TooManySessions$/), detail: 'open sessions hold too many bytes, retry later' });
  });

  it('marks the session cookie Secure over https only', async () => {
    const a = await app({ maxSessions: 100, maxSessionBytes: 1 << 20 });
    const https = (await post(a, authBody(), 'https://kbs')).headers.get('set-cookie') ?? '';
    expect(https).toMatch(/^kbs-session-id=[0-9a-f]{32}; .*; Secure/);
    const http = (await post(a, authBody(), 'http://kbs')).headers.get('set-cookie') ?? '';
    expect(http).toMatch(/^kbs-session-id=[0-9a-f]{32};/);
    expect(http).not.toMatch(/Secure/);
  });
});
