// Storage-failure logs (issue 15): which store, where, and the cause chain — never credentials.
import { generateKeyPairSync } from 'node:crypto';
import { Writable } from 'node:stream';
import { SignJWT } from 'jose';
import { pino } from 'pino';
import { afterAll, describe, expect, it } from 'vitest';
import { singleKeyAdminAuthorizer } from '../admin/single-key-authorizer.js';
import { createApp } from '../app.js';
import { defaultAttestationPolicy } from '../attestation/attestation-policy.js';
import { affirmingResourcePolicy } from '../release/resource-policy.js';
import { openMemoryState } from '../state/index.js';
import { StateError } from '../state/errors.js';
import type { KbsState } from '../state/ports.js';
import { EarSigner } from '../token/ear-signer.js';
import { describeStorageFailure, redactUrl, storageCauses } from './storage-failure.js';

const states: KbsState[] = [];
afterAll(async () => {
  for (const s of states) await s.close();
});

function refused(address: string, port: number): NodeJS.ErrnoException {
  return Object.assign(new Error(`connect ECONNREFUSED ${address}:${port}`), { code: 'ECONNREFUSED', errno: -111, syscall: 'connect', address, port });
}

describe('storage failure facts', () => {
  it('redacts credentials and queries from URLs', () => {
    expect(redactUrl('redis://user:s3cret@10.0.0.5:6380/2?password=x')).toBe('redis://10.0.0.5:6380/2');
    expect(redactUrl('https://token@vault.example:8200/')).toBe('https://vault.example:8200');
    expect(redactUrl('not a url')).toBe('(unparsable URL)');
  });

  it('walks the cause chain (bounded, cycle-safe), keeping the errno fields that locate the failure', () => {
    const root = refused('127.0.0.1', 6379);
    const err = new StateError('STATE_UNAVAILABLE', 'redis state is unavailable', { cause: new Error('Connection is closed.', { cause: root }) });
    const causes = storageCauses(err);
    expect(causes[0]).toMatchObject({ name: 'StateError', code: 'STATE_UNAVAILABLE' });
    expect(causes[2]).toMatchObject({ code: 'ECONNREFUSED', syscall: 'connect', address: '127.0.0.1', port: 6379 });
    const loop: { cause?: unknown } = new Error('a');
    loop.cause = loop;
    expect(storageCauses(loop)).toHaveLength(1);
    let deep: Error = new Error('0');
    for (let i = 1; i < 50; i++) deep = new Error(String(i), { cause: deep });
    expect(storageCauses(deep)).toHaveLength(6);
    expect(describeStorageFailure(Object.assign(new Error('x'), { code: 'KMS_UNAVAILABLE' }), { state: 's', secrets: 'redis://h:1' })).toMatchObject({ store: 'secrets', endpoint: 'redis://h:1' });
  });

  it('a 503 through createApp logs the store, its endpoint and the cause; the client gets only StorageUnavailable', async () => {
    const state = await openMemoryState({ sessionLimits: { maxSessions: 10, maxSessionBytes: 1 << 20 } });
    states.push(state);
    const down = new StateError('STATE_UNAVAILABLE', 'redis state is unavailable', { cause: refused('10.1.2.3', 7000) });
    const broken: KbsState = { ...state, referenceValues: { ...state.referenceValues, snapshot: () => Promise.reject(down) } };
    const lines: string[] = [];
    const logger = pino({ level: 'info' }, new Writable({ write: (chunk: Buffer, _e, cb) => (lines.push(chunk.toString()), cb()) }));
    const admin = generateKeyPairSync('ed25519');
    const app = createApp({
      state: broken,
      sessionTtlMs: 60_000,
      signer: await EarSigner.create({ privateKey: generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey, issuer: 'test', lifetimeMs: 60_000 }),
      appraisers: new Map(),
      attestationPolicy: defaultAttestationPolicy,
      resourcePolicy: affirmingResourcePolicy,
      resources: { get: async () => undefined, put: async () => ({ version: 1 }), delete: async () => false, generate: async () => ({ version: 1 }), rotate: async () => ({ version: 1 }) },
      adminAuth: singleKeyAdminAuthorizer(admin.publicKey),
      logger,
      maxBodyBytes: 1 << 20,
      build: 'test',
      storageEndpoints: { state: 'redis cluster 10.1.2.3:7000', secrets: 'embedded /x' },
    });
    const token = await new SignJWT({}).setProtectedHeader({ alg: 'EdDSA' }).setExpirationTime('5m').sign(admin.privateKey);
    const r = await app.request('/kbs/v0/reference-value', { headers: { authorization: `Bearer ${token}` } });
    expect(r.status).toBe(503);
    const body = await r.text();
    expect(body).not.toContain('10.1.2.3');
    const logged = lines.map((l) => JSON.parse(l) as { msg: string; storage?: { store: string; endpoint: string; causes: { code?: string; address?: string; port?: number }[] } }).find((l) => l.msg === 'storage unavailable');
    expect(logged?.storage).toMatchObject({ store: 'state', endpoint: 'redis cluster 10.1.2.3:7000' });
    expect(logged?.storage?.causes.map((c) => c.code)).toEqual(['STATE_UNAVAILABLE', 'ECONNREFUSED']);
    expect(logged?.storage?.causes[1]).toMatchObject({ address: '10.1.2.3', port: 7000 });
    expect(lines.join('')).not.toContain(token);
  });
});
