import { execFile } from 'node:child_process';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { expectKmsError } from '../conformance.test-support.js';
import type { SecretStore } from '../secret-store.js';
import { createEmbeddedStore } from './create-embedded-store.js';
import { RACY_WINDOW_MS, type RecordReadCache } from './read-cache.js';

const root = await fs.mkdtemp(path.join(os.tmpdir(), 'kh-kms-cache-'));
afterAll(() => fs.rm(root, { recursive: true, force: true, maxRetries: 5 }));

/** A store whose read cache sees the clock `RACY_WINDOW_MS` ahead: fresh directories count as settled. */
async function open(dir: string, extra: { maxBytes?: number; maxRecordBytes?: number; settled?: boolean } = {}): Promise<{ store: SecretStore; cache: RecordReadCache }> {
  let cache: RecordReadCache | undefined;
  const now = extra.settled === false ? Date.now : () => Date.now() + 2 * RACY_WINDOW_MS;
  const store = await createEmbeddedStore(
    { backend: 'embedded', dir },
    { readCache: { now, ...(extra.maxBytes !== undefined ? { maxBytes: extra.maxBytes } : {}), ...(extra.maxRecordBytes !== undefined ? { maxRecordBytes: extra.maxRecordBytes } : {}) }, onReadCache: (c) => (cache = c) },
  );
  return { store, cache: cache! };
}

const text = async (s: SecretStore, name: string, version?: number) => Buffer.from((await s.get(name, version === undefined ? {} : { version })).value).toString();
const recordFile = (dir: string, name: string, v: number) => path.join(dir, 'secrets', ...name.split('/'), `${v}.rec`);
/** More than one coarse file-system clock tick, so the next change gets a later timestamp. */
const tick = () => new Promise((r) => setTimeout(r, 30));

describe('embedded store read cache', () => {
  it('serves a repeated get from the cache (one stat), keeping records sealed', async () => {
    const dir = path.join(root, 'hit');
    const { store, cache } = await open(dir);
    await store.put('r/t/a', Buffer.from('one'));
    expect(await text(store, 'r/t/a')).toBe('one');
    expect(cache.bytes).toBeGreaterThan(0);
    // Overwrite the record in place (the store never does; its files are immutable): the directory is
    // unchanged, so the cached sealed record is what `get` authenticates and returns.
    const raw = await fs.readFile(recordFile(dir, 'r/t/a', 1), 'utf8');
    expect(raw).not.toContain('one');
    await fs.writeFile(recordFile(dir, 'r/t/a', 1), '{garbage');
    expect(await text(store, 'r/t/a')).toBe('one');
    await store.close();
  });

  it('does not cache a directory changed within the racy window', async () => {
    const { store, cache } = await open(path.join(root, 'racy'), { settled: false });
    await store.put('r/t/a', Buffer.from('one'));
    expect(await text(store, 'r/t/a')).toBe('one');
    expect(cache.bytes).toBe(0);
    await store.close();
  });

  it('is invalidated by this store’s put, rotate, delete and prune', async () => {
    const { store, cache } = await open(path.join(root, 'own'));
    await store.put('r/t/a', Buffer.from('one'));
    expect(await text(store, 'r/t/a')).toBe('one');
    await store.put('r/t/a', Buffer.from('two'));
    expect(await text(store, 'r/t/a')).toBe('two');

    const gen = await store.generate('r/t/k', { bytes: 32 });
    const before = Buffer.from((await store.get('r/t/k')).value).toString('hex');
    const rotated = await store.rotate('r/t/k');
    expect(rotated.version).toBe(gen.version + 1);
    const after = await store.get('r/t/k');
    expect(after.metadata.version).toBe(rotated.version);
    expect(Buffer.from(after.value).toString('hex')).not.toBe(before);

    await store.delete('r/t/a');
    await expectKmsError(store.get('r/t/a'), 'KMS_NOT_FOUND');
    await store.put('r/t/a', Buffer.from('reborn'));
    expect(await text(store, 'r/t/a')).toBe('reborn');
    expect((await store.get('r/t/a')).metadata.version).toBe(1);

    await store.put('r/t/p', Buffer.from('v1'), { keepVersions: 2 });
    await store.put('r/t/p', Buffer.from('v2'), { keepVersions: 2 });
    expect(await text(store, 'r/t/p', 1)).toBe('v1');
    await store.put('r/t/p', Buffer.from('v3'), { keepVersions: 2 });
    await expectKmsError(store.get('r/t/p', { version: 1 }), 'KMS_NOT_FOUND');
    expect(await text(store, 'r/t/p')).toBe('v3');
    expect(cache.bytes).toBeGreaterThan(0);
    await store.close();
  });

  it('sees writes, rotations, prunes and deletes by another store object on the same directory', async () => {
    const dir = path.join(root, 'two');
    const a = await open(dir);
    const b = await open(dir);
    await b.store.put('r/t/x', Buffer.from('b1'), { keepVersions: 2 });
    expect(await text(a.store, 'r/t/x')).toBe('b1');
    expect(await text(a.store, 'r/t/x', 1)).toBe('b1');
    expect(a.cache.bytes).toBeGreaterThan(0);
    await tick();
    await b.store.put('r/t/x', Buffer.from('b2'), { keepVersions: 2 });
    expect(await text(a.store, 'r/t/x')).toBe('b2');
    await tick();
    await b.store.put('r/t/x', Buffer.from('b3'), { keepVersions: 2 });
    await expectKmsError(a.store.get('r/t/x', { version: 1 }), 'KMS_NOT_FOUND');

    await b.store.generate('r/t/k', { bytes: 16 });
    const k1 = (await a.store.get('r/t/k')).value;
    await tick();
    await b.store.rotate('r/t/k');
    const k2 = await a.store.get('r/t/k');
    expect(k2.metadata.version).toBe(2);
    expect(Buffer.from(k2.value).equals(Buffer.from(k1))).toBe(false);

    await tick();
    await b.store.delete('r/t/x');
    await expectKmsError(a.store.get('r/t/x'), 'KMS_NOT_FOUND');
    // Deleted and re-created (a new directory inode) between two reads.
    await b.store.put('r/t/x', Buffer.from('again'));
    expect(await text(a.store, 'r/t/x')).toBe('again');
    await tick();
    await b.store.delete('r/t/x');
    await b.store.put('r/t/x', Buffer.from('third'));
    expect(await text(a.store, 'r/t/x')).toBe('third');
    await a.store.close();
    await b.store.close();
  });

  it('sees a write and a delete made by another process', async () => {
    const dir = path.join(root, 'proc');
    const { store } = await open(dir);
    await store.put('r/t/y', Buffer.from('mine'));
    expect(await text(store, 'r/t/y')).toBe('mine');
    const child = path.join(path.dirname(fileURLToPath(import.meta.url)), 'put-writer.test-support.ts');
    const run = (...args: string[]) => promisify(execFile)(process.execPath, ['--import', 'tsx', child, dir, ...args]);
    await run('put', 'r/t/y', 'theirs');
    expect(await text(store, 'r/t/y')).toBe('theirs');
    await run('delete', 'r/t/y');
    await expectKmsError(store.get('r/t/y'), 'KMS_NOT_FOUND');
    await store.close();
  }, 60_000);

  it('keeps its byte bound and skips large records', async () => {
    const { store, cache } = await open(path.join(root, 'bound'), { maxBytes: 4096, maxRecordBytes: 2048 });
    for (let i = 0; i < 20; i++) {
      await store.put(`r/t/n${i}`, Buffer.alloc(300, i));
      await store.get(`r/t/n${i}`);
      expect(cache.bytes).toBeLessThanOrEqual(4096);
    }
    expect(cache.bytes).toBeGreaterThan(0);
    await store.put('r/t/big', Buffer.alloc(4000, 1));
    const held = cache.bytes;
    await store.get('r/t/big');
    expect(cache.bytes).toBe(held);
    await store.close();
  });
});
