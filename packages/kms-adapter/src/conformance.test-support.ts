/**
 * The conformance suite every SecretStore backend must pass. Test support only: not exported from
 * the package index, not compiled into dist (see tsconfig exclude).
 */
import { randomBytes } from 'node:crypto';
import { describe, expect, it, beforeAll, afterAll } from 'vitest';
import { KmsError, type KmsErrorCode } from './errors.js';
import type { SecretStore } from './secret-store.js';

export interface ConformanceOptions {
  /**
   * True when several store objects from `factory` may share one backend (separate connections or
   * processes). The concurrent-writer test then spreads its writers over 4 store objects, so the
   * backend's own atomic version bump is exercised, not just the in-process queue.
   */
  readonly multiInstance?: boolean;
  /** Make the backend fail (server down) and bring it back; the same store must recover. */
  readonly fault?: { readonly inject: () => Promise<void>; readonly heal: () => Promise<void> };
}

export async function expectKmsError(p: Promise<unknown>, code: KmsErrorCode): Promise<KmsError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err, `expected ${code}`).toBeInstanceOf(KmsError);
  expect((err as KmsError).code).toBe(code);
  return err as KmsError;
}

const enc = (s: string): Uint8Array => Buffer.from(s, 'utf8');
const dec = (b: Uint8Array): string => Buffer.from(b).toString('utf8');

export function runSecretStoreConformance(
  name: string,
  factory: () => Promise<SecretStore>,
  options: ConformanceOptions = {},
): void {
  describe(`SecretStore conformance: ${name}`, () => {
    let store: SecretStore;
    // Each run uses its own repository, so backends need no wiping between runs.
    const repo = `conf-${randomBytes(4).toString('hex')}`;
    const n = (type: string, tag: string): string => `${repo}/${type}/${tag}`;

    beforeAll(async () => {
      store = await factory();
    });
    afterAll(async () => {
      await store.close();
    });

    it('puts, gets the latest and each version, with metadata', async () => {
      const m1 = await store.put(n('crud', 'a'), enc('one'), { labels: { env: 'test', team: 'x' } });
      expect(m1).toMatchObject({ name: n('crud', 'a'), version: 1, labels: { env: 'test', team: 'x' } });
      expect(m1.createdAt).toBeInstanceOf(Date);
      expect(m1.generated).toBeUndefined();
      const m2 = await store.put(n('crud', 'a'), enc('two'));
      expect(m2.version).toBe(2);
      const latest = await store.get(n('crud', 'a'));
      expect(dec(latest.value)).toBe('two');
      expect(latest.metadata.version).toBe(2);
      expect(latest.metadata.labels).toEqual({});
      const first = await store.get(n('crud', 'a'), { version: 1 });
      expect(dec(first.value)).toBe('one');
      expect(first.metadata.labels).toEqual({ env: 'test', team: 'x' });
      expect(first.metadata.createdAt.getTime()).toBe(m1.createdAt.getTime());
    });

    it('stores empty and binary values byte for byte', async () => {
      const bin = randomBytes(4096);
      await store.put(n('crud', 'bin'), bin);
      expect(Buffer.from((await store.get(n('crud', 'bin'))).value).equals(bin)).toBe(true);
      await store.put(n('crud', 'empty'), new Uint8Array(0));
      expect((await store.get(n('crud', 'empty'))).value.length).toBe(0);
    });

    it('lists names and metadata of the latest versions, never values', async () => {
      const secret = `list-secret-${randomBytes(8).toString('hex')}`;
      await store.put(n('list', 'x'), enc('old'));
      await store.put(n('list', 'x'), enc(secret), { labels: { k: 'v' } });
      await store.put(n('list', 'y'), enc(secret));
      const mine = (await store.list()).filter((m) => m.name.startsWith(`${repo}/list/`));
      expect(mine.map((m) => [m.name, m.version])).toEqual([
        [n('list', 'x'), 2],
        [n('list', 'y'), 1],
      ]);
      expect(mine[0]?.labels).toEqual({ k: 'v' });
      const dump = JSON.stringify(mine);
      for (const form of [secret, Buffer.from(secret).toString('base64'), Buffer.from(secret).toString('hex')]) {
        expect(dump).not.toContain(form);
      }
      for (const m of mine) expect(Object.keys(m)).not.toContain('value');
    });

    it('lists versions oldest first', async () => {
      for (const v of ['a', 'b', 'c']) await store.put(n('ver', 'x'), enc(v));
      const vs = await store.versions(n('ver', 'x'));
      expect(vs.map((m) => m.version)).toEqual([1, 2, 3]);
      expect(vs.every((m) => m.name === n('ver', 'x'))).toBe(true);
    });

    it('deletes a resource and all its versions; a new history starts at 1', async () => {
      await store.put(n('del', 'x'), enc('a'));
      await store.put(n('del', 'x'), enc('b'));
      await store.delete(n('del', 'x'));
      await expectKmsError(store.get(n('del', 'x')), 'KMS_NOT_FOUND');
      await expectKmsError(store.get(n('del', 'x'), { version: 1 }), 'KMS_NOT_FOUND');
      await expectKmsError(store.versions(n('del', 'x')), 'KMS_NOT_FOUND');
      await expectKmsError(store.delete(n('del', 'x')), 'KMS_NOT_FOUND');
      expect((await store.list()).some((m) => m.name === n('del', 'x'))).toBe(false);
      expect((await store.put(n('del', 'x'), enc('c'))).version).toBe(1);
      expect(dec((await store.get(n('del', 'x'))).value)).toBe('c');
    });

    it('reports unknown resources and versions as KMS_NOT_FOUND, bad versions as KMS_INVALID_ARGUMENT', async () => {
      await expectKmsError(store.get(n('nf', 'nope')), 'KMS_NOT_FOUND');
      await store.put(n('nf', 'one'), enc('x'));
      await expectKmsError(store.get(n('nf', 'one'), { version: 2 }), 'KMS_NOT_FOUND');
      for (const version of [0, -1, 1.5, Number.NaN, 1e12, '1' as unknown as number]) {
        await expectKmsError(store.get(n('nf', 'one'), { version }), 'KMS_INVALID_ARGUMENT');
      }
    });

    it('generates random keys of the requested length with a rotation period', async () => {
      const m = await store.generate(n('gen', 'k'), { bytes: 32, rotationPeriodMs: 60_000, labels: { use: 'wrap' } });
      expect(m).toMatchObject({ version: 1, generated: { bytes: 32, rotationPeriodMs: 60_000 }, labels: { use: 'wrap' } });
      const k1 = await store.get(n('gen', 'k'));
      expect(k1.value.length).toBe(32);
      expect(k1.metadata.generated).toEqual({ bytes: 32, rotationPeriodMs: 60_000 });
      await store.generate(n('gen', 'k2'), { bytes: 32 });
      const k2 = await store.get(n('gen', 'k2'));
      expect(Buffer.from(k2.value).equals(Buffer.from(k1.value))).toBe(false);
      for (const bytes of [0, 8, 15, 1025, 16.5]) {
        await expectKmsError(store.generate(n('gen', 'bad'), { bytes }), 'KMS_INVALID_ARGUMENT');
      }
      await expectKmsError(store.generate(n('gen', 'bad'), { bytes: 32, rotationPeriodMs: 10 }), 'KMS_INVALID_ARGUMENT');
    });

    it('rotates a generated key: new version, same policy, older version still readable', async () => {
      await store.generate(n('rot', 'k'), { bytes: 24, rotationPeriodMs: 5_000, labels: { a: 'b' }, keepVersions: 3 });
      const before = await store.get(n('rot', 'k'));
      const m = await store.rotate(n('rot', 'k'));
      expect(m).toMatchObject({ version: 2, generated: { bytes: 24, rotationPeriodMs: 5_000 }, labels: { a: 'b' }, keepVersions: 3 });
      const after = await store.get(n('rot', 'k'));
      expect(after.metadata.version).toBe(2);
      expect(after.value.length).toBe(24);
      expect(Buffer.from(after.value).equals(Buffer.from(before.value))).toBe(false);
      const old = await store.get(n('rot', 'k'), { version: 1 });
      expect(Buffer.from(old.value).equals(Buffer.from(before.value))).toBe(true);
      await expectKmsError(store.rotate(n('rot', 'k'), { ifVersion: 1 }), 'KMS_CONFLICT');
      expect((await store.rotate(n('rot', 'k'), { ifVersion: 2 })).version).toBe(3);
      await store.put(n('rot', 'plain'), enc('not a generated key'));
      await expectKmsError(store.rotate(n('rot', 'plain')), 'KMS_CONFLICT');
      await expectKmsError(store.rotate(n('rot', 'absent')), 'KMS_NOT_FOUND');
    });

    it('prunes to the last N versions', async () => {
      for (let i = 1; i <= 5; i++) await store.put(n('prune', 'x'), enc(`v${i}`), { keepVersions: 3 });
      expect((await store.versions(n('prune', 'x'))).map((m) => m.version)).toEqual([3, 4, 5]);
      await expectKmsError(store.get(n('prune', 'x'), { version: 1 }), 'KMS_NOT_FOUND');
      await expectKmsError(store.get(n('prune', 'x'), { version: 2 }), 'KMS_NOT_FOUND');
      expect(dec((await store.get(n('prune', 'x'), { version: 3 })).value)).toBe('v3');
      // Pruning never reuses numbers.
      expect((await store.put(n('prune', 'x'), enc('v6'), { keepVersions: 1 })).version).toBe(6);
      expect((await store.versions(n('prune', 'x'))).map((m) => m.version)).toEqual([6]);
    });

    it('honours ifVersion (compare-and-set)', async () => {
      await expectKmsError(store.put(n('cas', 'x'), enc('a'), { ifVersion: 1 }), 'KMS_CONFLICT');
      expect((await store.put(n('cas', 'x'), enc('a'), { ifVersion: 0 })).version).toBe(1);
      await expectKmsError(store.put(n('cas', 'x'), enc('b'), { ifVersion: 0 }), 'KMS_CONFLICT');
      expect((await store.put(n('cas', 'x'), enc('b'), { ifVersion: 1 })).version).toBe(2);
      expect(dec((await store.get(n('cas', 'x'))).value)).toBe('b');
      for (const ifVersion of [-1, 1.5, Number.NaN, 1e12]) {
        await expectKmsError(store.put(n('cas', 'x'), enc('c'), { ifVersion }), 'KMS_INVALID_ARGUMENT');
      }
    });

    it('refuses invalid names, including path traversal, with KMS_INVALID_NAME and without echoing them', async () => {
      const bad = [
        '../../etc/passwd',
        'a/b/../c',
        'a/../b/c',
        'a/b/..',
        '/a/b/c',
        'a/b/c/',
        'a//c',
        'a/b',
        'a/b/c/d',
        '.hidden/b/c',
        'a/b/.c',
        'a/b/c\0d',
        'a/b/c d',
        'a/b/c\nd',
        'a\\b/c/d',
        'a/b/%2e%2e',
        'a/b/*',
        'a/b/{x}',
        `a/b/${'x'.repeat(256)}`,
        '',
        42 as unknown as string,
      ];
      for (const name of bad) {
        for (const op of [
          () => store.put(name, enc('x')),
          () => store.get(name),
          () => store.delete(name),
          () => store.versions(name),
          () => store.generate(name, { bytes: 32 }),
          () => store.rotate(name),
        ]) {
          const err = await expectKmsError(op(), 'KMS_INVALID_NAME');
          if (typeof name === 'string' && name.length > 3) expect(err.message).not.toContain(name);
        }
      }
      expect((await store.list()).some((m) => m.name.includes('passwd'))).toBe(false);
    });

    it('refuses oversized values and bad labels or keep counts with typed errors', async () => {
      await expectKmsError(store.put(n('lim', 'x'), new Uint8Array(1024 * 1024 + 1)), 'KMS_TOO_LARGE');
      await expectKmsError(store.put(n('lim', 'x'), enc('x'), { labels: { 'bad key': 'v' } }), 'KMS_INVALID_ARGUMENT');
      await expectKmsError(store.put(n('lim', 'x'), enc('x'), { labels: { k: 'v'.repeat(257) } }), 'KMS_INVALID_ARGUMENT');
      const many = Object.fromEntries(Array.from({ length: 33 }, (_, i) => [`k${i}`, 'v']));
      await expectKmsError(store.put(n('lim', 'x'), enc('x'), { labels: many }), 'KMS_INVALID_ARGUMENT');
      await expectKmsError(store.put(n('lim', 'x'), enc('x'), { keepVersions: 0 }), 'KMS_INVALID_ARGUMENT');
      await expectKmsError(store.put(n('lim', 'x'), 'text' as unknown as Uint8Array), 'KMS_INVALID_ARGUMENT');
      await expectKmsError(store.get(n('lim', 'x')), 'KMS_NOT_FOUND');
    });

    it('100 concurrent writers to one name: no lost and no duplicated versions', async () => {
      const stores = options.multiInstance === true ? [store, ...(await Promise.all([1, 2, 3].map(() => factory())))] : [store];
      try {
        const target = n('race', 'x');
        const results = await Promise.all(
          Array.from({ length: 100 }, (_, i) =>
            (stores[i % stores.length] as SecretStore).put(target, enc(`writer-${i}`), { keepVersions: 200 }).then((m) => ({ i, v: m.version })),
          ),
        );
        const versions = results.map((r) => r.v).sort((a, b) => a - b);
        expect(versions).toEqual(Array.from({ length: 100 }, (_, i) => i + 1));
        expect((await store.versions(target)).map((m) => m.version)).toEqual(versions);
        for (const { i, v } of results) {
          expect(dec((await store.get(target, { version: v })).value)).toBe(`writer-${i}`);
        }
        const top = results.find((r) => r.v === 100);
        expect(dec((await store.get(target)).value)).toBe(`writer-${top?.i}`);
      } finally {
        for (const s of stores.slice(1)) await s.close();
      }
    });

    if (options.fault !== undefined) {
      const fault = options.fault;
      it('surfaces a failing backend as KMS_UNAVAILABLE and recovers with the same store', async () => {
        await store.put(n('fault', 'x'), enc('before'));
        await fault.inject();
        try {
          await expectKmsError(store.get(n('fault', 'x')), 'KMS_UNAVAILABLE');
          await expectKmsError(store.put(n('fault', 'x'), enc('during')), 'KMS_UNAVAILABLE');
          await expectKmsError(store.list(), 'KMS_UNAVAILABLE');
        } finally {
          await fault.heal();
        }
        // The backend may have lost data (a test server without persistence); what matters is that
        // the same store object works again.
        await eventually(async () => {
          await store.put(n('fault', 'y'), enc('after'));
        });
        expect(dec((await store.get(n('fault', 'y'))).value)).toBe('after');
      });
    }
  });
}

/** Retry an operation until it succeeds (bounded: 100 tries, 100 ms apart). */
export async function eventually(fn: () => Promise<void>): Promise<void> {
  let last: unknown;
  for (let i = 0; i < 100; i++) {
    try {
      await fn();
      return;
    } catch (err) {
      last = err;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  throw last;
}
