import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { StateError } from '../errors.js';
import { JournalStore, type JournalCodec } from './journal-store.js';

const root = await mkdtemp(path.join(tmpdir(), 'kh-journal-'));
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

/** Values are non-negative integers. */
const codec: JournalCodec<number> = {
  encode: (_k, v) => v,
  decode(k, raw) {
    if (!Number.isSafeInteger(raw) || (raw as number) < 0) throw new StateError('STATE_CORRUPT', `bad value for ${k}`);
    return raw as number;
  },
  isKey: (k) => /^[a-z0-9]{1,16}$/.test(k),
};

const open = (dir: string, extra: { compactMinBytes?: number; initial?: () => Promise<ReadonlyMap<string, number>> } = {}) =>
  JournalStore.open<number>({ dir, name: 't', codec, ...extra });
const set = (s: JournalStore<number>, k: string, v: number | undefined) => s.mutate(() => ({ changes: [[k, v]], result: undefined }));
const head = (gen: number) => `${JSON.stringify({ format: 1, store: 't', gen })}\n`;
const snapshot = (gen: number, entries: Record<string, number>) =>
  [JSON.stringify({ format: 1, store: 't', gen, count: Object.keys(entries).length }), ...Object.entries(entries).map(([k, v]) => JSON.stringify({ k, v })), JSON.stringify({ end: Object.keys(entries).length })].join('\n') + '\n';
const line = (k: string, v?: number) => `${JSON.stringify(v === undefined ? { k, del: 1 } : { k, v })}\n`;
const contents = async (s: JournalStore<number>) => Object.fromEntries([...s.keys()].sort().map((k) => [k, s.get(k)]));

async function code(p: Promise<unknown>): Promise<string | undefined> {
  const err = await p.then(() => undefined, (e: unknown) => e);
  return err instanceof StateError ? err.code : err === undefined ? undefined : String(err);
}

describe('JournalStore', () => {
  it('decides mutations in call order against queued ones, persists, and imports the initial content once', async () => {
    const dir = path.join(root, 'basic');
    const s = await open(dir, { initial: async () => new Map([['a', 1]]) });
    // Thirty increments issued at once: each sees the previous one (no lost update).
    await Promise.all(Array.from({ length: 30 }, () => s.mutate((view) => ({ changes: [['a', (view.get('a') ?? 0) + 1]], result: undefined }))));
    // A refused mutation writes nothing and does not disturb the others of its batch.
    const results = await Promise.allSettled([set(s, 'b', 2), s.mutate(() => { throw new TypeError('no'); }), set(s, 'a', 99), set(s, 'b', undefined)]);
    expect(results.map((r) => r.status)).toEqual(['fulfilled', 'rejected', 'fulfilled', 'fulfilled']);
    expect(await contents(s)).toEqual({ a: 99 });
    await s.close();
    const again = await open(dir, { initial: async () => new Map([['zzz', 1]]) });
    expect(await contents(again)).toEqual({ a: 99 });
    await again.close();
  });

  it('reloads every crash point of a compaction', async () => {
    const cases: [string, Record<string, string>, Record<string, number>][] = [
      ['normal', { 't.snapshot': snapshot(3, { a: 1 }), 't.journal': head(3) + line('a', 2) + line('b', 5) }, { a: 2, b: 5 }],
      ['snapshot G, journal G, next G+1 (the snapshot never landed)', { 't.snapshot': snapshot(3, { a: 1 }), 't.journal': head(3) + line('a', 2), 't.journal.next': head(4) + line('b', 7) }, { a: 2, b: 7 }],
      ['snapshot G+1, journal G, next G+1 (the rename never happened)', { 't.snapshot': snapshot(4, { a: 2 }), 't.journal': head(3) + line('a', 2), 't.journal.next': head(4) + line('a', undefined) + line('c', 1) }, { c: 1 }],
      ['stale journal after a normalisation crash', { 't.snapshot': snapshot(5, { a: 9 }), 't.journal': head(3) + line('a', 2) }, { a: 9 }],
      ['torn last line', { 't.snapshot': snapshot(1, {}), 't.journal': head(1) + line('a', 1) + '{"k":"b","v":' }, { a: 1 }],
    ];
    for (const [name, files, expected] of cases) {
      const dir = path.join(root, `crash-${cases.findIndex((c) => c[0] === name)}`);
      const s0 = await open(dir);
      await s0.close();
      for (const f of await readdir(dir)) await rm(path.join(dir, f));
      for (const [f, text] of Object.entries(files)) await writeFile(path.join(dir, f), text);
      const s = await open(dir);
      expect(await contents(s), name).toEqual(expected);
      await set(s, 'z', 1);
      await s.close();
      // Normalised to one snapshot and one journal, and the new write is there.
      expect((await readdir(dir)).sort(), name).toEqual(['t.journal', 't.snapshot']);
      const again = await open(dir);
      expect(await contents(again), name).toEqual({ ...expected, z: 1 });
      await again.close();
    }
  });

  it('refuses files that do not fit together or are damaged (STATE_CORRUPT)', async () => {
    const bad: [string, Record<string, string>][] = [
      ['journal ahead of the snapshot', { 't.snapshot': snapshot(1, {}), 't.journal': head(2) }],
      ['next two generations ahead', { 't.snapshot': snapshot(1, {}), 't.journal': head(1), 't.journal.next': head(3) }],
      ['journal missing before next G+1', { 't.snapshot': snapshot(1, {}), 't.journal.next': head(2) }],
      ['snapshot deleted', { 't.journal': head(4) + line('a', 1) }],
      ['truncated snapshot', { 't.snapshot': snapshot(1, { a: 1, b: 2 }).split('\n').slice(0, 2).join('\n') + '\n', 't.journal': head(1) }],
      ['torn line in a closed journal', { 't.snapshot': snapshot(1, {}), 't.journal': head(1) + '{"k":', 't.journal.next': head(2) }],
      ['garbage in the middle', { 't.snapshot': snapshot(1, {}), 't.journal': head(1) + 'garbage\n' + line('a', 1) }],
      ['bad key', { 't.snapshot': snapshot(1, {}), 't.journal': head(1) + line('../x', 1) }],
      ['bad value', { 't.snapshot': snapshot(1, {}), 't.journal': head(1) + line('a', -1) }],
      ['another store', { 't.snapshot': snapshot(1, {}).replace('"store":"t"', '"store":"u"'), 't.journal': head(1) }],
    ];
    for (const [name, files] of bad) {
      const dir = path.join(root, `bad-${bad.findIndex((c) => c[0] === name)}`);
      await rm(dir, { recursive: true, force: true });
      const s0 = await open(dir);
      await s0.close();
      for (const f of await readdir(dir)) await rm(path.join(dir, f));
      for (const [f, text] of Object.entries(files)) await writeFile(path.join(dir, f), text);
      expect(await code(open(dir)), name).toBe('STATE_CORRUPT');
    }
  });

  it('compacts in the background while writes continue, then reopens to the same content', async () => {
    const dir = path.join(root, 'compact');
    const s = await open(dir, { compactMinBytes: 512 });
    for (let round = 0; round < 20; round++) await Promise.all(Array.from({ length: 20 }, (_, i) => set(s, `k${i}`, round)));
    await s.close();
    const snap = await readFile(path.join(dir, 't.snapshot'), 'utf8');
    expect(JSON.parse(snap.split('\n')[0]!).gen).toBeGreaterThan(2);
    const again = await open(dir);
    expect(await contents(again)).toEqual(Object.fromEntries(Array.from({ length: 20 }, (_, i) => [`k${i}`, 19])));
    await again.close();
  });
});
