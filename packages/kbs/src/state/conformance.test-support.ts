/**
 * The conformance suite every KbsState backend must pass (embedded, memory, Redis standalone and
 * Cluster). It covers each operation of ports.ts and each rule of its header. Test support only:
 * not exported from the package, not built into dist (tsconfig exclude).
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { verifyParsedAuditLog } from '@keyhold/audit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KbsError, type KbsErrorCode } from '../errors.js';
import { IdentityStoreError } from '../identity/errors.js';
import { StateError, type StateErrorCode } from './errors.js';
import { updateNode } from './node-update.js';
import type { KbsEvent, KbsEventInput, KbsState, NewSession, NodeRecordInput, SessionLimits, StoredNodeCa } from './ports.js';
import { compareEventIds } from './event-record.js';
import { openStateAuditLog } from './state-audit-log.js';

const run = promisify(execFile);

export interface OpenOptions {
  readonly sessionLimits?: SessionLimits;
  /** Events retained (default: the backend's 10 000). */
  readonly eventRetention?: number;
}

export interface StateConformanceOptions {
  /**
   * Open a KbsState on the backend namespace `scope` (embedded: a data dir; Redis: a key prefix).
   * Each call for Redis opens its own connection. The same scope always names the same data.
   */
  readonly open: (scope: string, options?: OpenOptions) => Promise<KbsState>;
  /** Several KbsState objects may be open on one scope at once (separate connections or processes). */
  readonly multiInstance: boolean;
  /** Data survives close and a new open of the same scope (everything but the memory-only stores). */
  readonly persistent: boolean;
  /** Kill the backend (SIGKILL) and bring it back (same data, `appendfsync always`). */
  readonly fault?: { readonly inject: () => Promise<void>; readonly heal: () => Promise<void>; readonly operationTimeoutMs: number };
}

export const DEFAULT_LIMITS: SessionLimits = { maxSessions: 100_000, maxSessionBytes: 256 * 1024 * 1024 };

async function caught(p: Promise<unknown>): Promise<unknown> {
  return p.then(
    () => undefined,
    (e: unknown) => e,
  );
}

export async function expectKbsError(p: Promise<unknown>, ...codes: KbsErrorCode[]): Promise<void> {
  const err = await caught(p);
  expect(err, `expected KbsError ${codes.join('|')}`).toBeInstanceOf(KbsError);
  expect(codes).toContain((err as KbsError).code);
}

export async function expectStateError(p: Promise<unknown>, code: StateErrorCode): Promise<StateError> {
  const err = await caught(p);
  expect(err, `expected StateError ${code}, got ${String(err)}`).toBeInstanceOf(StateError);
  expect((err as StateError).code).toBe(code);
  return err as StateError;
}

/** A session whose id starts with `shard` (one hex digit: the Redis backend shards sessions by it). */
export function newSession(options: { shard?: string; ttlMs?: number; challenge?: Record<string, unknown> } = {}): NewSession {
  const shard = options.shard ?? randomBytes(1).toString('hex')[0]!;
  return {
    id: shard + randomBytes(16).toString('hex').slice(1),
    tee: 'tpm',
    nonce: randomBytes(32).toString('base64'),
    hashAlgorithm: 'sha384',
    expiresAtMs: Date.now() + (options.ttlMs ?? 60_000),
    ...(options.challenge !== undefined ? { challenge: options.challenge } : {}),
  };
}

const HEX = '0123456789abcdef';
const ekHash = (): string => randomBytes(32).toString('hex');

export function nodeInput(nodeId: string, extra: Partial<NodeRecordInput> = {}): NodeRecordInput {
  return { nodeId, ekHash: nodeId, akName: `000b${randomBytes(32).toString('hex')}`, firstSeenAt: new Date().toISOString(), state: 'active', ...extra };
}

/** Make `count` self-signed CA certificates (PEM) with openssl. */
export async function makeCaPems(count: number): Promise<string[]> {
  const dir = await mkdtemp(path.join(tmpdir(), 'kh-ca-'));
  try {
    const out: string[] = [];
    for (let i = 0; i < count; i++) {
      const cert = path.join(dir, `ca${i}.pem`);
      await run('openssl', [
        'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', path.join(dir, `k${i}.pem`),
        '-subj', `/CN=keyhold conformance CA ${i} ${randomBytes(4).toString('hex')}`, '-days', '2',
        '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign', '-out', cert,
      ]);
      out.push(await readFile(cert, 'utf8'));
    }
    return out;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** Retry until `fn` succeeds (bounded: 100 tries, 100 ms apart). */
export async function eventually<T>(fn: () => Promise<T>): Promise<T> {
  let last: unknown;
  for (let i = 0; i < 100; i++) {
    try {
      return await fn();
    } catch (err) {
      last = err;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  throw last;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export function runStateConformance(name: string, options: StateConformanceOptions): void {
  const { open, multiInstance, persistent } = options;
  const run = randomBytes(3).toString('hex');
  let scopeCounter = 0;
  /** A fresh, empty namespace of the backend. */
  const freshScope = (): string => `c${run}${(scopeCounter++).toString(36)}`;

  describe(`KbsState conformance: ${name}`, () => {
    const mainScope = freshScope();
    let state: KbsState;
    /** Instances sharing `state`'s backend (separate connections), or `[state]` when single-instance. */
    let all: KbsState[];
    let caPems: string[];

    beforeAll(async () => {
      state = await open(mainScope);
      all = multiInstance ? [state, await open(mainScope), await open(mainScope)] : [state];
      caPems = await makeCaPems(3);
    });
    afterAll(async () => {
      for (const s of all ?? []) await s.close();
    });
    const pick = (i: number): KbsState => all[i % all.length]!;

    describe('sessions', () => {
      it('creates, reads, consumes the nonce once, records the attestation, deletes', async () => {
        const s = newSession({ challenge: { 'tpm-identity': { mode: 'activate', expectedHex: 'ab'.repeat(32) } } });
        await state.sessions.create(s);
        const got = await pick(1).sessions.get(s.id);
        expect(got).toEqual({ ...s, nonceConsumed: false });
        const before = await state.sessions.consumeNonce(s.id);
        expect(before).toEqual({ ...s, nonceConsumed: false });
        await expectKbsError(pick(2).sessions.consumeNonce(s.id), 'NONCE_CONSUMED');
        expect((await state.sessions.get(s.id)).nonceConsumed).toBe(true);
        const attested = { claims: { ear: 'x', n: 1 }, teePubkey: { kty: 'EC', alg: 'ES256', crv: 'P-256', x: 'a', y: 'b' } as const };
        await pick(1).sessions.recordAttestation(s.id, attested);
        expect((await pick(2).sessions.get(s.id)).attested).toEqual(attested);
        await pick(2).sessions.delete(s.id);
        await expectKbsError(state.sessions.get(s.id), 'SESSION_MISSING');
        await expectKbsError(state.sessions.consumeNonce(s.id), 'SESSION_MISSING');
        await state.sessions.delete(s.id);
      });

      it('refuses unknown and malformed ids as SESSION_MISSING, malformed sessions as TypeError', async () => {
        for (const id of [randomBytes(16).toString('hex'), '', 'A'.repeat(32), '../../x', `${'a'.repeat(31)}\n`, '{kh:x}', 'a'.repeat(10_000), 42 as unknown as string]) {
          await expectKbsError(state.sessions.get(id), 'SESSION_MISSING');
          await expectKbsError(state.sessions.consumeNonce(id), 'SESSION_MISSING');
        }
        const ok = newSession();
        for (const bad of [
          { ...ok, id: 'X'.repeat(32) },
          { ...ok, nonce: 'short' },
          { ...ok, tee: 'TPM with spaces' },
          { ...ok, hashAlgorithm: 'md5' as 'sha384' },
          { ...ok, expiresAtMs: Number.NaN },
          { ...ok, challenge: { big: 'x'.repeat(70 * 1024) } },
        ]) {
          expect(await caught(state.sessions.create(bad))).toBeInstanceOf(TypeError);
        }
        const s = newSession();
        await state.sessions.create(s);
        expect(await caught(state.sessions.recordAttestation(s.id, { claims: {}, teePubkey: { kty: 'EC', alg: 'ES256', crv: 'P-256', x: 'a', y: 'b' } }))).toBeInstanceOf(TypeError);
      });

      it('consumeNonce is exactly-once under concurrency from every instance', async () => {
        for (let round = 0; round < 5; round++) {
          const s = newSession();
          await state.sessions.create(s);
          const results = await Promise.allSettled(Array.from({ length: 24 }, (_, i) => pick(i).sessions.consumeNonce(s.id)));
          const won = results.filter((r) => r.status === 'fulfilled');
          expect(won).toHaveLength(1);
          for (const r of results) if (r.status === 'rejected') expect((r.reason as KbsError).code).toBe('NONCE_CONSUMED');
        }
      });

      it('expires sessions at expiresAtMs: refused, then gone', async () => {
        const s = newSession({ ttlMs: 250 });
        await state.sessions.create(s);
        expect((await pick(1).sessions.get(s.id)).id).toBe(s.id);
        await sleep(350);
        await expectKbsError(pick(1).sessions.consumeNonce(s.id), 'SESSION_EXPIRED', 'SESSION_MISSING');
        await expectKbsError(state.sessions.get(s.id), 'SESSION_EXPIRED', 'SESSION_MISSING');
        await expectKbsError(state.sessions.get(s.id), 'SESSION_MISSING', 'SESSION_EXPIRED');
      });

      it('caps the number of open sessions (SESSION_LIMIT); deleting or expiring frees room', async () => {
        const scope = freshScope();
        const a = await open(scope, { sessionLimits: { maxSessions: 32, maxSessionBytes: 1024 * 1024 } });
        const b = multiInstance ? await open(scope, { sessionLimits: { maxSessions: 32, maxSessionBytes: 1024 * 1024 } }) : a;
        try {
          const made: NewSession[] = [];
          for (let i = 0; i < 32; i++) {
            const s = newSession({ shard: HEX[i % 16] });
            await (i % 2 === 0 ? a : b).sessions.create(s);
            made.push(s);
          }
          for (const shard of HEX) await expectKbsError(b.sessions.create(newSession({ shard })), 'SESSION_LIMIT');
          expect((await a.sessions.stats()).count).toBe(32);
          await a.sessions.delete(made[0]!.id);
          await b.sessions.create(newSession({ shard: made[0]!.id[0] }));
          for (const s of made.slice(1)) await b.sessions.delete(s.id);
          // Now fill with short-lived sessions; once they expire, the room is free again.
          await Promise.all(Array.from({ length: 31 }, (_, i) => a.sessions.create(newSession({ shard: HEX[(i + 1) % 16], ttlMs: 800 }))));
          await expectKbsError(a.sessions.create(newSession({ shard: '5' })), 'SESSION_LIMIT');
          await sleep(900);
          for (let i = 0; i < 31; i++) await b.sessions.create(newSession({ shard: HEX[(i + 1) % 16] }));
        } finally {
          if (b !== a) await b.close();
          await a.close();
        }
      });

      it('caps the bytes held by open sessions (SESSION_LIMIT) and accounts them exactly', async () => {
        const scope = freshScope();
        const maxSessionBytes = 16 * 2500;
        const a = await open(scope, { sessionLimits: { maxSessions: 10_000, maxSessionBytes } });
        try {
          const pad = 'x'.repeat(900);
          let created = 0;
          let refused = 0;
          const ids: string[] = [];
          for (let i = 0; i < 48; i++) {
            const s = newSession({ shard: HEX[i % 16], challenge: { pad } });
            const err = await caught(a.sessions.create(s));
            if (err === undefined) {
              created++;
              ids.push(s.id);
            } else {
              expect((err as KbsError).code).toBe('SESSION_LIMIT');
              refused++;
            }
          }
          const one = 96 + 32 + 3 + 44 + JSON.stringify({ pad }).length;
          const ideal = Math.floor(maxSessionBytes / one);
          expect(refused).toBeGreaterThan(0);
          // Exact in one process; Redis splits the cap over 16 shards (documented), so it may refuse a little early.
          expect(created).toBeGreaterThanOrEqual(Math.floor(ideal * 0.75));
          expect(created).toBeLessThanOrEqual(ideal);
          const stats = await a.sessions.stats();
          expect(stats).toEqual({ count: created, bytes: created * one });
          for (const id of ids) await a.sessions.delete(id);
          expect(await a.sessions.stats()).toEqual({ count: 0, bytes: 0 });
        } finally {
          await a.close();
        }
      });
    });

    describe('nodes', () => {
      it('compare-and-swap: creates at 0, refuses stale versions, deletes by version', async () => {
        const id = ekHash();
        expect(await state.nodes.get(id)).toBeUndefined();
        const r1 = await state.nodes.compareAndSwap(id, 0, nodeInput(id));
        expect(r1?.version).toBe(1);
        expect(await pick(1).nodes.compareAndSwap(id, 0, nodeInput(id))).toBeUndefined();
        const r2 = await pick(1).nodes.compareAndSwap(id, 1, { ...nodeInput(id), state: 'revoked', revokedAt: new Date().toISOString() });
        expect(r2).toMatchObject({ version: 2, state: 'revoked' });
        expect(await pick(2).nodes.get(id)).toEqual(r2);
        expect(await state.nodes.compareAndSwap(id, 1, nodeInput(id))).toBeUndefined();
        expect(await state.nodes.compareAndDelete(id, 1)).toBe(false);
        expect(await pick(2).nodes.compareAndDelete(id, 2)).toBe(true);
        expect(await state.nodes.get(id)).toBeUndefined();
        expect(await state.nodes.compareAndDelete(id, 2)).toBe(false);
        // A new history starts at 1 again.
        expect((await state.nodes.compareAndSwap(id, 0, nodeInput(id)))?.version).toBe(1);
        // ak: ids and unknown fields (from a newer KBS) are kept.
        const akId = `ak:000b${randomBytes(32).toString('hex')}`;
        const withExtra = { ...nodeInput(akId), ekHash: undefined, futureField: { a: 1 } } as unknown as NodeRecordInput;
        expect(await state.nodes.compareAndSwap(akId, 0, withExtra)).toMatchObject({ nodeId: akId, futureField: { a: 1 }, version: 1 });
      });

      it('refuses malformed ids, records and versions as TypeError', async () => {
        const id = ekHash();
        for (const bad of ['', 'A'.repeat(64), '../etc', `ak:${'z'.repeat(10)}`, 'x'.repeat(100)]) {
          expect(await caught(state.nodes.get(bad))).toBeInstanceOf(TypeError);
          expect(await caught(state.nodes.compareAndSwap(bad, 0, nodeInput(bad)))).toBeInstanceOf(TypeError);
        }
        expect(await caught(state.nodes.compareAndSwap(id, 0, nodeInput(ekHash())))).toBeInstanceOf(TypeError);
        expect(await caught(state.nodes.compareAndSwap(id, -1, nodeInput(id)))).toBeInstanceOf(TypeError);
        expect(await caught(state.nodes.compareAndSwap(id, 0, { ...nodeInput(id), state: 'gone' as 'active' }))).toBeInstanceOf(TypeError);
        expect(await caught(state.nodes.compareAndSwap(id, 0, { ...nodeInput(id), lastVerdict: { status: 'x', at: 'now', reason: 'r'.repeat(70_000) } }))).toBeInstanceOf(TypeError);
        expect(await state.nodes.get(id)).toBeUndefined();
      });

      it('N concurrent read-modify-writes from every instance: none is lost', async () => {
        const id = ekHash();
        await state.nodes.compareAndSwap(id, 0, { ...nodeInput(id), certificates: [] });
        const n = 30;
        await Promise.all(
          Array.from({ length: n }, (_, i) =>
            updateNode(pick(i).nodes, id, (prev) => {
              const { version: _v, ...rest } = prev!;
              return { ...rest, certificates: [...(prev!.certificates ?? []), { serial: (i + 1).toString(16), notAfter: new Date().toISOString() }] };
            }),
          ),
        );
        const final = await pick(1).nodes.get(id);
        expect(final?.version).toBe(n + 1);
        expect(new Set(final?.certificates?.map((c) => c.serial))).toEqual(new Set(Array.from({ length: n }, (_, i) => (i + 1).toString(16))));
      });

      it('lists in id order, by state, a page at a time', async () => {
        const scope = freshScope();
        const s = await open(scope);
        try {
          const ids = Array.from({ length: 7 }, ekHash).sort();
          for (const [i, id] of ids.entries()) await s.nodes.compareAndSwap(id, 0, nodeInput(id, { state: i % 2 === 0 ? 'active' : 'banned', ...(i % 2 === 0 ? {} : { banned: { at: new Date().toISOString(), reason: 'test' } }) }));
          const page1 = await s.nodes.list({ limit: 3 });
          expect(page1.nodes.map((r) => r.nodeId)).toEqual(ids.slice(0, 3));
          expect(page1.next).toBe(ids[2]);
          const page2 = await s.nodes.list({ limit: 3, after: page1.next! });
          expect(page2.nodes.map((r) => r.nodeId)).toEqual(ids.slice(3, 6));
          const page3 = await s.nodes.list({ limit: 3, after: page2.next! });
          expect(page3.nodes.map((r) => r.nodeId)).toEqual(ids.slice(6));
          expect(page3.next).toBeUndefined();
          expect((await s.nodes.list({ state: 'banned' })).nodes.map((r) => r.nodeId)).toEqual(ids.filter((_, i) => i % 2 === 1));
          // A state change moves the record between state listings.
          const first = (await s.nodes.get(ids[0]!))!;
          const { version: _v, ...rest } = first;
          await s.nodes.compareAndSwap(ids[0]!, first.version, { ...rest, state: 'revoked', revokedAt: new Date().toISOString() });
          expect((await s.nodes.list({ state: 'active' })).nodes.map((r) => r.nodeId)).toEqual([ids[2], ids[4], ids[6]]);
          expect((await s.nodes.list({ state: 'revoked' })).nodes.map((r) => r.nodeId)).toEqual([ids[0]]);
          expect(await caught(s.nodes.list({ limit: 0 }))).toBeInstanceOf(TypeError);
          expect(await caught(s.nodes.list({ limit: 100_000 }))).toBeInstanceOf(TypeError);
        } finally {
          await s.close();
        }
      });

      it('delete racing a write of another node: the delete holds, the write lands', async () => {
        for (let round = 0; round < 5; round++) {
          const x = ekHash();
          const y = ekHash();
          await state.nodes.compareAndSwap(x, 0, nodeInput(x));
          await Promise.all([updateNode(pick(1).nodes, x, () => 'delete'), pick(2).nodes.compareAndSwap(y, 0, nodeInput(y))]);
          expect(await state.nodes.get(x)).toBeUndefined();
          expect((await state.nodes.get(y))?.version).toBe(1);
        }
      });
    });

    describe('reference values', () => {
      it('sets, reads, replaces and deletes per name; snapshots are immutable and versioned', async () => {
        const n = `rv-${randomBytes(4).toString('hex')}`;
        const s0 = await state.referenceValues.snapshot();
        await state.referenceValues.set({ [`${n}-a`]: ['1', '2'], [`${n}-b`]: ['3'] });
        const s1 = await pick(1).referenceValues.snapshot();
        expect(s1.version).toBeGreaterThan(s0.version);
        expect(s1.get(`${n}-a`)).toEqual(['1', '2']);
        expect(s1.all()[`${n}-b`]).toEqual(['3']);
        await pick(2).referenceValues.set({ [`${n}-a`]: ['9'] });
        const s2 = await state.referenceValues.snapshot();
        expect(s2.get(`${n}-a`)).toEqual(['9']);
        expect(s2.get(`${n}-b`)).toEqual(['3']);
        expect(s1.get(`${n}-a`)).toEqual(['1', '2']);
        expect(await pick(1).referenceValues.delete(`${n}-a`)).toBe(true);
        expect(await state.referenceValues.delete(`${n}-a`)).toBe(false);
        const s3 = await pick(2).referenceValues.snapshot();
        expect(s3.get(`${n}-a`)).toBeUndefined();
        expect(s3.version).toBeGreaterThan(s2.version);
        // Equal versions, equal content.
        const again = await pick(2).referenceValues.snapshot();
        expect(again.version).toBe(s3.version);
        expect(again.all()).toEqual(s3.all());
        for (const bad of [{ '': ['x'] }, { 'a\nb': ['x'] }, { x: 'notarray' }, { x: [1] }, { ['n'.repeat(300)]: ['x'] }]) {
          expect(await caught(state.referenceValues.set(bad as unknown as Record<string, string[]>))).toBeInstanceOf(TypeError);
        }
      });

      it('50 concurrent writes of distinct names from every instance: all present', async () => {
        const n = `c50-${randomBytes(4).toString('hex')}`;
        await Promise.all(Array.from({ length: 50 }, (_, i) => pick(i).referenceValues.set({ [`${n}-${i}`]: [`v${i}`] })));
        for (const s of all) {
          const snap = await s.referenceValues.snapshot();
          for (let i = 0; i < 50; i++) expect(snap.get(`${n}-${i}`)).toEqual([`v${i}`]);
        }
      });

      it('a delete racing a set of another name is never undone', async () => {
        const n = `race-${randomBytes(4).toString('hex')}`;
        for (let round = 0; round < 10; round++) {
          await state.referenceValues.set({ [`${n}-x`]: ['trusted_ak'] });
          await Promise.all([pick(1).referenceValues.delete(`${n}-x`), pick(2).referenceValues.set({ [`${n}-y${round}`]: ['other'] })]);
          const snap = await pick(round).referenceValues.snapshot();
          expect(snap.get(`${n}-x`)).toBeUndefined();
          expect(snap.get(`${n}-y${round}`)).toEqual(['other']);
        }
      });
    });

    describe('EK allowlist', () => {
      it('adds, answers has, lists with metadata, removes', async () => {
        const h = ekHash();
        expect(await state.ekAllowlist.has(h)).toBe(false);
        await pick(1).ekAllowlist.add(h.toUpperCase(), { note: 'rack 4', now: new Date('2025-01-02T03:04:05Z') });
        expect(await pick(2).ekAllowlist.has(h)).toBe(true);
        expect((await state.ekAllowlist.list()).find((e) => e.ekHash === h)).toEqual({ ekHash: h, note: 'rack 4', addedAt: '2025-01-02T03:04:05.000Z' });
        expect(await pick(2).ekAllowlist.remove(h)).toBe(true);
        expect(await state.ekAllowlist.remove(h)).toBe(false);
        expect(await pick(1).ekAllowlist.has(h)).toBe(false);
        for (const bad of ['', 'zz', '../x', 'a'.repeat(63)]) {
          const err = await caught(state.ekAllowlist.has(bad));
          expect(err).toBeInstanceOf(IdentityStoreError);
          expect((err as IdentityStoreError).code).toBe('EK_HASH_INVALID');
        }
      });

      it('concurrent adds all land; a remove racing an add of another EK holds', async () => {
        const hs = Array.from({ length: 20 }, ekHash);
        await Promise.all(hs.map((h, i) => pick(i).ekAllowlist.add(h)));
        for (const h of hs) expect(await state.ekAllowlist.has(h)).toBe(true);
        for (let round = 0; round < 5; round++) {
          const x = ekHash();
          const y = ekHash();
          await state.ekAllowlist.add(x);
          await Promise.all([pick(1).ekAllowlist.remove(x), pick(2).ekAllowlist.add(y)]);
          expect(await state.ekAllowlist.has(x)).toBe(false);
          expect(await state.ekAllowlist.has(y)).toBe(true);
        }
      });
    });

    describe('EK CA store', () => {
      it('adds uploads (idempotent per certificate), snapshots by version, removes uploads', async () => {
        const [a, b] = caPems;
        const s0 = await state.ekCa.snapshot();
        const r1 = await state.ekCa.add(Buffer.from(`${a}\n${b}`));
        expect(r1.added).toHaveLength(2);
        expect(r1.alreadyPresent).toHaveLength(0);
        const r2 = await pick(1).ekCa.add(Buffer.from(a!));
        expect(r2.added).toHaveLength(0);
        expect(r2.alreadyPresent.map((e) => e.sha256)).toEqual([r1.added[0]!.sha256]);
        const s1 = await pick(2).ekCa.snapshot();
        expect(s1.version).toBeGreaterThan(s0.version);
        const shas = r1.added.map((e) => e.sha256);
        expect(s1.entries.filter((e) => shas.includes(e.sha256))).toHaveLength(2);
        expect(s1.certificates.length).toBe(s1.entries.length);
        expect(s1.entries.find((e) => e.sha256 === shas[0])).toMatchObject({ file: `${shas[0]}.pem`, subject: expect.stringContaining('keyhold conformance CA') });
        expect(await pick(1).ekCa.remove(shas[0]!)).toBe(true);
        expect(await state.ekCa.remove(shas[0]!)).toBe(false);
        const s2 = await state.ekCa.snapshot();
        expect(s2.entries.map((e) => e.sha256)).not.toContain(shas[0]);
        expect(s2.entries.map((e) => e.sha256)).toContain(shas[1]);
        expect(s1.entries.map((e) => e.sha256)).toContain(shas[0]);
        await state.ekCa.remove(shas[1]!);
        for (const bad of [Buffer.from('not a certificate'), Buffer.alloc(0)]) {
          const err = await caught(state.ekCa.add(bad));
          expect(err).toBeInstanceOf(IdentityStoreError);
          expect((err as IdentityStoreError).code).toBe('CA_STORE_INVALID');
        }
        expect(await caught(state.ekCa.remove('../../etc/passwd'))).toBeInstanceOf(IdentityStoreError);
      });

      it('a remove racing an add of another certificate holds', async () => {
        const [, , c] = caPems;
        const [a] = caPems;
        const { added } = await state.ekCa.add(Buffer.from(a!));
        await Promise.all([pick(1).ekCa.remove(added[0]!.sha256), pick(2).ekCa.add(Buffer.from(c!))]);
        const snap = await pick(2).ekCa.snapshot();
        expect(snap.entries.map((e) => e.sha256)).not.toContain(added[0]!.sha256);
        expect(snap.entries.some((e) => e.subject.includes('CA 2'))).toBe(true);
      });
    });

    describe('IMA checkpoints', () => {
      it('sets, gets (bytes intact), deletes per node', async () => {
        const node = randomBytes(32).toString('hex');
        const record = {
          policyKey: 'a'.repeat(64),
          resetCount: 3,
          checkpoint: { bank: 'sha256' as const, nextIndex: 42, pcrValue: new Uint8Array(randomBytes(32)) },
          prefixChars: 1234,
          prefixSha256: 'b'.repeat(64),
        };
        expect(await state.imaCheckpoints.get(node)).toBeUndefined();
        await state.imaCheckpoints.set(node, record);
        const got = await pick(1).imaCheckpoints.get(node);
        expect(got).toEqual(record);
        expect(Buffer.from(got!.checkpoint.pcrValue).equals(Buffer.from(record.checkpoint.pcrValue))).toBe(true);
        await pick(2).imaCheckpoints.delete(node);
        expect(await state.imaCheckpoints.get(node)).toBeUndefined();
        expect(await caught(state.imaCheckpoints.get('{bad key}'))).toBeInstanceOf(TypeError);
      });
    });

    describe('rate limits', () => {
      it('takes tokens up to the burst, then refuses with a retry time; shared by every instance', async () => {
        const key = `auth:10.0.0.${randomBytes(1)[0]}:${randomBytes(4).toString('hex')}`;
        const rule = { ratePerSec: 0.5, burst: 6 };
        const results = await Promise.all(Array.from({ length: 9 }, (_, i) => pick(i).rateLimits.take(key, rule)));
        expect(results.filter((r) => r.allowed)).toHaveLength(6);
        for (const r of results) {
          if (r.allowed) expect(r.retryAfterMs).toBe(0);
          else expect(r.retryAfterMs).toBeGreaterThan(0);
        }
        const other = await state.rateLimits.take(`${key}:other`, rule);
        expect(other.allowed).toBe(true);
        // Hostile keys (hash-tag braces, huge, control characters) are just other buckets.
        for (const hostile of [`{${key}}`, `${key}\n{kh:nodes}`, 'x'.repeat(10_000) + key]) {
          expect((await pick(1).rateLimits.take(hostile, { ratePerSec: 0.5, burst: 1 })).allowed).toBe(true);
          expect((await pick(2).rateLimits.take(hostile, { ratePerSec: 0.5, burst: 1 })).allowed).toBe(false);
        }
        expect(await caught(state.rateLimits.take(key, { ratePerSec: 0, burst: 1 }))).toBeInstanceOf(TypeError);
      });

      it('refills at the rule rate', async () => {
        const key = `refill:${randomBytes(6).toString('hex')}`;
        const rule = { ratePerSec: 20, burst: 1 };
        expect((await state.rateLimits.take(key, rule)).allowed).toBe(true);
        expect((await pick(1).rateLimits.take(key, rule)).allowed).toBe(false);
        await sleep(120);
        expect((await pick(2).rateLimits.take(key, rule)).allowed).toBe(true);
      });
    });

    describe('audit trail', () => {
      it('appends from every instance into one chain that verifies', async () => {
        const scope = freshScope();
        const opened = [await open(scope), ...(multiInstance ? [await open(scope)] : [])];
        try {
          const logs = await Promise.all(opened.map((s) => openStateAuditLog(s)));
          await Promise.all(Array.from({ length: 20 }, (_, i) => logs[i % logs.length]!.record('admin', { action: 'conformance.append', reason: String(i) })));
          const parsed = await opened[0]!.audit.read();
          expect(parsed.records).toHaveLength(20);
          expect(new Set(parsed.records.map((r) => r.fields.reason)).size).toBe(20);
          expect(verifyParsedAuditLog(parsed).ok).toBe(true);
          expect((await opened[opened.length - 1]!.audit.last())?.seq).toBe(20);
        } finally {
          for (const s of opened) await s.close();
        }
      });
    });

    describe('policies', () => {
      it('versions puts, refuses a stale expectedVersion, lists and deletes', async () => {
        const id = `conf-${randomBytes(4).toString('hex')}`;
        const ref = { kind: 'attestation' as const, id };
        const doc = { id, type: 'cel' as const, kind: 'attestation' as const, rules: { status: '"affirming"' } };
        const p1 = await state.policies.put(ref, doc);
        expect(p1.version).toBe(1);
        const p2 = await pick(1).policies.put(ref, doc, { expectedVersion: 1 });
        expect(p2.version).toBe(2);
        const err = await caught(pick(2).policies.put(ref, doc, { expectedVersion: 1 }));
        expect((err as { code?: string }).code).toBe('POLICY_VERSION_CONFLICT');
        expect((await pick(2).policies.get(ref))?.version).toBe(2);
        expect((await state.policies.list()).some((p) => p.ref.kind === 'attestation' && p.ref.id === id)).toBe(true);
        expect(await state.policies.delete(ref)).toBe(true);
        expect((await pick(1).policies.put(ref, doc)).version).toBe(3);
      });

      it('keeps a bounded version history per slot, newest first, seen by every instance', async () => {
        const id = `hist-${randomBytes(4).toString('hex')}`;
        const ref = { kind: 'attestation' as const, id };
        const doc = (status: string) => ({ id, type: 'cel' as const, kind: 'attestation' as const, rules: { status } });
        await state.policies.put(ref, doc('"affirming"'));
        await pick(1).policies.put(ref, doc('"warning"'));
        const history = await pick(2).policies.history?.(ref);
        expect(history?.map((p) => [p.version, (p.document as { rules: { status: string } }).rules.status])).toEqual([
          [2, '"warning"'],
          [1, '"affirming"'],
        ]);
      });
    });

    describe('events, leases and the node CA', () => {
      const ev = (type: KbsEventInput['type'], extra: Partial<KbsEventInput> = {}): KbsEventInput => ({ type, at: new Date().toISOString(), ...extra });
      const sorted = (ids: readonly string[]): boolean => ids.every((id, i) => i === 0 || compareEventIds(ids[i - 1]!, id) < 0);

      it('publishes in order with increasing ids; reads after an id, the latest N; every instance sees them', async () => {
        const scope = freshScope();
        const a = await open(scope);
        const others = multiInstance ? [await open(scope)] : [];
        try {
          const first = await a.events.publish([ev('attestation', { node: 'n1', status: 'affirming' }), ev('release', { repository: 'r', resource: 'r/k/1' })]);
          expect(first.map((e) => e.type)).toEqual(['attestation', 'release']);
          expect(first[0]).toMatchObject({ node: 'n1', status: 'affirming' });
          const more: KbsEvent[] = [];
          for (let i = 0; i < 5; i++) more.push(...(await (others[i % Math.max(1, others.length)] ?? a).events.publish([ev('denial', { reason: `r${i}` })])));
          const all = [...first, ...more];
          expect(sorted(all.map((e) => e.id))).toBe(true);
          for (const s of [a, ...others]) {
            expect((await s.events.read({ limit: 100 })).map((e) => e.id)).toEqual(all.map((e) => e.id));
            expect((await s.events.read({ after: all[2]!.id, limit: 2 })).map((e) => e.id)).toEqual([all[3]!.id, all[4]!.id]);
            expect((await s.events.latest(3)).map((e) => e.reason)).toEqual(['r2', 'r3', 'r4']);
            expect(await s.events.read({ after: all[6]!.id, limit: 10 })).toEqual([]);
          }
          expect(await a.events.publish([])).toEqual([]);
        } finally {
          for (const s of [a, ...others]) await s.close();
        }
      });

      it('refuses malformed events, ids, names and limits as TypeError', async () => {
        await expect(state.events.publish([{ type: 'nope' as 'release', at: 'x' }])).rejects.toBeInstanceOf(TypeError);
        await expect(state.events.publish([{ ...ev('release'), reason: 'x'.repeat(5000) }])).rejects.toBeInstanceOf(TypeError);
        await expect(state.events.publish([{ ...ev('release'), token: 'secret' } as KbsEventInput])).rejects.toBeInstanceOf(TypeError);
        await expect(state.events.read({ after: '1-2-3', limit: 1 })).rejects.toBeInstanceOf(TypeError);
        await expect(state.events.read({ after: "1-0')", limit: 1 })).rejects.toBeInstanceOf(TypeError);
        await expect(state.events.read({ limit: 0 })).rejects.toBeInstanceOf(TypeError);
        await expect(state.events.latest(1001)).rejects.toBeInstanceOf(TypeError);
        await expect(state.events.cursor('Bad Name')).rejects.toBeInstanceOf(TypeError);
        await expect(state.leases.acquire('x}y', 'h', 1000)).rejects.toBeInstanceOf(TypeError);
        await expect(state.leases.acquire('ok', 'h', 0)).rejects.toBeInstanceOf(TypeError);
      });

      it('keeps a bounded number of events (the newest)', async () => {
        const s = await open(freshScope(), { eventRetention: 50 });
        try {
          for (let i = 0; i < 6; i++) await s.events.publish(Array.from({ length: 50 }, (_, j) => ev('attestation', { reason: `${i * 50 + j}` })));
          const kept = await s.events.read({ limit: 1000 });
          // Redis trims approximately (whole stream nodes): at least the retention, never unbounded.
          expect(kept.length).toBeGreaterThanOrEqual(50);
          expect(kept.length).toBeLessThanOrEqual(200);
          expect(kept[kept.length - 1]!.reason).toBe('299');
          expect((await s.events.latest(50)).map((e) => Number(e.reason))).toEqual(Array.from({ length: 50 }, (_, i) => 250 + i));
        } finally {
          await s.close();
        }
      });

      it('waitForNew wakes on a publish from any instance, else times out; an abort ends it', async () => {
        const [newest] = await state.events.publish([ev('attestation')]);
        const t0 = Date.now();
        await state.events.waitForNew(newest!.id, 150);
        expect(Date.now() - t0).toBeGreaterThanOrEqual(100);
        const waiting = state.events.waitForNew(newest!.id, 10_000);
        await sleep(50);
        const t1 = Date.now();
        await pick(1).events.publish([ev('node.stale', { node: ekHash() })]);
        await waiting;
        expect(Date.now() - t1).toBeLessThan(3000);
        const ac = new AbortController();
        const aborted = state.events.waitForNew((await state.events.latest(1))[0]!.id, 10_000, ac.signal);
        ac.abort();
        await aborted;
        // An older id: resolves at once.
        await state.events.waitForNew(newest!.id, 10_000);
      });

      it('leases: one holder across instances, renewal by the holder, takeover after expiry, release', async () => {
        const name = `l${randomBytes(3).toString('hex')}`;
        const results = await Promise.all(all.map((s, i) => s.leases.acquire(name, `holder-${i}`, 60_000)));
        expect(results.filter(Boolean)).toHaveLength(1);
        const winner = results.indexOf(true);
        expect(await pick(winner).leases.acquire(name, `holder-${winner}`, 300)).toBe(true);
        expect(await pick(winner + 1).leases.acquire(name, 'other', 60_000)).toBe(false);
        await sleep(450);
        expect(await pick(winner + 1).leases.acquire(name, 'other', 60_000)).toBe(true);
        await pick(winner).leases.release(name, `holder-${winner}`);
        expect(await pick(winner).leases.acquire(name, 'third', 60_000)).toBe(false);
        await pick(winner + 1).leases.release(name, 'other');
        expect(await pick(winner).leases.acquire(name, 'third', 60_000)).toBe(true);
      });

      it('delivery cursors: fenced by the lease, never backwards, seen by every instance', async () => {
        const lease = `n${randomBytes(3).toString('hex')}`;
        const consumer = `hook-${randomBytes(3).toString('hex')}`;
        const [e1, e2] = await state.events.publish([ev('node.banned', { node: ekHash() }), ev('node.unbanned', { node: ekHash() })]);
        expect(await state.events.cursor(consumer)).toBeUndefined();
        expect(await state.events.advanceCursor(consumer, e1!.id, { lease, holder: 'a' })).toBe(false);
        expect(await state.events.cursor(consumer)).toBeUndefined();
        expect(await state.leases.acquire(lease, 'a', 60_000)).toBe(true);
        expect(await state.events.advanceCursor(consumer, e2!.id, { lease, holder: 'a' })).toBe(true);
        expect(await state.events.advanceCursor(consumer, e1!.id, { lease, holder: 'a' })).toBe(true);
        for (const s of all) expect(await s.events.cursor(consumer)).toBe(e2!.id);
        expect(await pick(1).events.advanceCursor(consumer, `${Date.now() + 1000}-0`, { lease, holder: 'b' })).toBe(false);
        expect(await state.events.cursor(consumer)).toBe(e2!.id);
        await state.leases.release(lease, 'a');
      });

      it('node CA: created once, whichever instance wins; every instance reads the winner', async () => {
        const scope = freshScope();
        const insts = multiInstance ? [await open(scope), await open(scope), await open(scope)] : [await open(scope)];
        try {
          expect(await insts[0]!.nodeCa.get()).toBeUndefined();
          const mk = (i: number): StoredNodeCa => ({ certificatePem: `-----BEGIN CERTIFICATE-----\nMII${i}\n-----END CERTIFICATE-----\n`, wrappedKey: `key${i}`, createdAt: new Date().toISOString() });
          const got = await Promise.all([0, 1, 2].map((i) => insts[i % insts.length]!.nodeCa.createIfAbsent(mk(i))));
          expect(new Set(got.map((g) => g.wrappedKey)).size).toBe(1);
          for (const s of insts) expect((await s.nodeCa.get())?.wrappedKey).toBe(got[0]!.wrappedKey);
          await expect(insts[0]!.nodeCa.createIfAbsent({ ...mk(9), wrappedKey: 'not base64url!' })).rejects.toBeInstanceOf(TypeError);
        } finally {
          for (const s of insts) await s.close();
        }
      });
    });

    it('a delete racing a write of another key holds on sessions, IMA checkpoints and policies too', async () => {
      const ima = { policyKey: 'c'.repeat(64), resetCount: 0, checkpoint: { bank: 'sha256' as const, nextIndex: 1, pcrValue: new Uint8Array(32) }, prefixChars: 1, prefixSha256: 'd'.repeat(64) };
      const doc = (id: string) => ({ id, type: 'cel' as const, kind: 'attestation' as const, rules: { status: '"affirming"' } });
      for (let round = 0; round < 3; round++) {
        const [sx, sy] = [newSession(), newSession()];
        await state.sessions.create(sx);
        const [nx, ny] = [`race-x-${randomBytes(4).toString('hex')}`, `race-y-${randomBytes(4).toString('hex')}`];
        await state.imaCheckpoints.set(nx, ima);
        await state.policies.put({ kind: 'attestation', id: nx }, doc(nx));
        await Promise.all([
          pick(1).sessions.delete(sx.id),
          pick(2).sessions.create(sy),
          pick(1).imaCheckpoints.delete(nx),
          pick(2).imaCheckpoints.set(ny, ima),
          pick(1).policies.delete({ kind: 'attestation', id: nx }),
          pick(2).policies.put({ kind: 'attestation', id: ny }, doc(ny)),
        ]);
        await expectKbsError(state.sessions.get(sx.id), 'SESSION_MISSING');
        expect((await state.sessions.get(sy.id)).id).toBe(sy.id);
        expect(await state.imaCheckpoints.get(nx)).toBeUndefined();
        expect(await state.imaCheckpoints.get(ny)).toEqual(ima);
        expect(await state.policies.get({ kind: 'attestation', id: nx })).toBeUndefined();
        expect((await state.policies.get({ kind: 'attestation', id: ny }))?.version).toBe(1);
      }
    });

    if (persistent) {
      it('everything but memory-only state survives close and reopen', async () => {
        const scope = freshScope();
        const s = await open(scope);
        const id = ekHash();
        const h = ekHash();
        const names = Array.from({ length: 50 }, (_, i) => `persist-${i}`);
        await Promise.all([
          s.nodes.compareAndSwap(id, 0, nodeInput(id)),
          ...names.map((n) => s.referenceValues.set({ [n]: [n] })),
          s.ekAllowlist.add(h, { note: 'kept' }),
          s.ekCa.add(Buffer.from(caPems[0]!)),
          s.policies.put({ kind: 'attestation', id: 'persist' }, { id: 'persist', type: 'cel', kind: 'attestation', rules: { status: '"affirming"' } }),
        ]);
        await s.referenceValues.delete('persist-3');
        const [durable] = await s.events.publish([{ type: 'node.banned', at: new Date().toISOString(), node: id, reason: 'kept' }], { durable: true });
        expect(await s.leases.acquire('persist', 'me', 60_000)).toBe(true);
        expect(await s.events.advanceCursor('persist-hook', durable!.id, { lease: 'persist', holder: 'me' })).toBe(true);
        const ca = await s.nodeCa.createIfAbsent({ certificatePem: '-----BEGIN CERTIFICATE-----\nx\n', wrappedKey: 'abc', createdAt: new Date().toISOString() });
        const log = await openStateAuditLog(s);
        await log.record('admin', { action: 'persist' });
        await s.close();
        const again = await open(scope);
        try {
          expect((await again.nodes.get(id))?.version).toBe(1);
          const snap = await again.referenceValues.snapshot();
          for (const n of names) expect(snap.get(n)).toEqual(n === 'persist-3' ? undefined : [n]);
          expect(await again.ekAllowlist.has(h)).toBe(true);
          expect((await again.ekCa.snapshot()).entries.some((e) => e.subject.includes('CA 0'))).toBe(true);
          expect((await again.policies.get({ kind: 'attestation', id: 'persist' }))?.version).toBe(1);
          expect((await again.audit.last())?.fields.action).toBe('persist');
          expect((await again.events.read({ limit: 10 })).find((e) => e.id === durable!.id)?.reason).toBe('kept');
          expect(await again.events.cursor('persist-hook')).toBe(durable!.id);
          expect(await again.nodeCa.get()).toEqual(ca);
          // Ids keep increasing across a restart.
          const [after] = await again.events.publish([{ type: 'node.recovered', at: new Date().toISOString(), node: id }]);
          expect(compareEventIds(after!.id, durable!.id)).toBeGreaterThan(0);
        } finally {
          await again.close();
        }
      });
    }

    if (options.fault !== undefined) {
      const fault = options.fault;
      it('a killed backend: typed STATE_UNAVAILABLE within the deadline, recovery without reopening, no acknowledged write lost', async () => {
        const nodeId = ekHash();
        await state.nodes.compareAndSwap(nodeId, 0, nodeInput(nodeId));
        let acked = 0;
        let failed = 0;
        const ackedNames: string[] = [];
        const unexpected: unknown[] = [];
        let stop = false;
        const writer = async (s: KbsState, w: number): Promise<void> => {
          for (let i = 0; !stop; i++) {
            try {
              await updateNode(s.nodes, nodeId, (prev) => {
                const { version: _v, ...rest } = prev!;
                return rest;
              });
              acked++;
              const name = `fault-${w}-${i}`;
              await s.referenceValues.set({ [name]: ['v'] });
              ackedNames.push(name);
            } catch (err) {
              if (err instanceof StateError && err.code === 'STATE_UNAVAILABLE') failed++;
              else unexpected.push(err);
              await sleep(20);
            }
          }
        };
        const writers = all.map((s, w) => writer(s, w));
        await sleep(300);
        await fault.inject();
        try {
          // During the outage every kind of operation fails typed, within the deadline.
          const ops: (() => Promise<unknown>)[] = [
            () => pick(1).nodes.get(nodeId),
            () => state.sessions.create(newSession()),
            () => pick(2).referenceValues.snapshot(),
            () => state.ekAllowlist.has(ekHash()),
            () => state.rateLimits.take('fault', { ratePerSec: 1, burst: 1 }),
            () => state.imaCheckpoints.get('fault'),
            () => pick(1).events.publish([{ type: 'node.banned', at: new Date().toISOString(), node: nodeId }]),
            () => state.events.read({ limit: 10 }),
            () => state.leases.acquire('fault', 'me', 1000),
            () => state.nodeCa.get(),
          ];
          for (const op of ops) {
            const t0 = Date.now();
            await expectStateError(op(), 'STATE_UNAVAILABLE');
            expect(Date.now() - t0).toBeLessThan(fault.operationTimeoutMs + 1000);
          }
        } finally {
          await fault.heal();
        }
        // The same objects work again once the server is back.
        await eventually(() => state.nodes.get(nodeId));
        const ackedBefore = acked;
        await sleep(300);
        stop = true;
        await Promise.all(writers);
        expect(unexpected).toEqual([]);
        expect(failed).toBeGreaterThan(0);
        expect(acked).toBeGreaterThan(ackedBefore);
        // Every acknowledged increment is there (failed ones may or may not have landed).
        const final = await state.nodes.get(nodeId);
        expect(final!.version).toBeGreaterThanOrEqual(1 + acked);
        expect(final!.version).toBeLessThanOrEqual(1 + acked + failed);
        const snap = await pick(1).referenceValues.snapshot();
        for (const n of ackedNames) expect(snap.get(n)).toEqual(['v']);
      }, 60_000);
    }
  });
}
