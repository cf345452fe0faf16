import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, readdir, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { DirectoryEkAllowlist, MemoryEkAllowlist, type EkAllowlist } from './ek-allowlist.js';
import { IdentityStoreError } from './errors.js';

const h = (s: string): string => createHash('sha256').update(s).digest('hex');

async function code(p: Promise<unknown>): Promise<string | undefined> {
  try {
    await p;
  } catch (e) {
    if (e instanceof IdentityStoreError) return e.code;
    throw e;
  }
  return undefined;
}

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'keyhold-allow-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe.each([
  ['DirectoryEkAllowlist', (): EkAllowlist => new DirectoryEkAllowlist(dir)],
  ['MemoryEkAllowlist', (): EkAllowlist => new MemoryEkAllowlist()],
])('%s', (_name, make) => {
  it('adds, finds (case-insensitively), lists and removes entries', async () => {
    const a = make();
    expect(await a.has(h('a'))).toBe(false);
    await a.add(h('a'), { note: 'rack 4' });
    await a.add(h('b').toUpperCase());
    expect(await a.has(h('a'))).toBe(true);
    expect(await a.has(h('a').toUpperCase())).toBe(true);
    expect(await a.has(h('b'))).toBe(true);
    expect(await a.has(h('c'))).toBe(false);
    expect(await a.list()).toEqual([h('a'), h('b')].sort());
    expect(await a.remove(h('a'))).toBe(true);
    expect(await a.remove(h('a'))).toBe(false);
    expect(await a.has(h('a'))).toBe(false);
  });

  it('rejects anything but 64 hex characters before touching storage (path traversal)', async () => {
    const a = make();
    for (const bad of ['', '../etc/passwd', `${h('a')}/..`, h('a').slice(1), `${h('a')}0`, 'g'.repeat(64), `../${h('a').slice(3)}`]) {
      expect(await code(a.has(bad))).toBe('EK_HASH_INVALID');
      expect(await code(a.add(bad))).toBe('EK_HASH_INVALID');
      expect(await code(a.remove(bad))).toBe('EK_HASH_INVALID');
    }
  });
});

describe('DirectoryEkAllowlist on disk', () => {
  it('stores entries bucketed by the first two hex characters, without temp files left behind', async () => {
    const a = new DirectoryEkAllowlist(dir);
    await a.add(h('x'));
    const x = h('x');
    expect(await readdir(dir)).toEqual([x.slice(0, 2)]);
    expect(await readdir(path.join(dir, x.slice(0, 2)))).toEqual([x]);
  });

  it('sees entries an owner wrote by hand, and an absent directory lists nothing', async () => {
    const x = h('hand');
    await mkdir(path.join(dir, x.slice(0, 2)));
    await writeFile(path.join(dir, x.slice(0, 2), x), '');
    expect(await new DirectoryEkAllowlist(dir).has(x)).toBe(true);
    expect(await new DirectoryEkAllowlist(path.join(dir, 'none')).list()).toEqual([]);
    expect(await new DirectoryEkAllowlist(path.join(dir, 'none')).has(x)).toBe(false);
  });

  it('fails closed on read errors other than ENOENT', async () => {
    const a = new DirectoryEkAllowlist(dir);
    const x = h('loop');
    const y = h('dir');
    const z = h('notdir');
    // ELOOP: entry is a symlink to itself
    await mkdir(path.join(dir, x.slice(0, 2)), { recursive: true });
    await symlink(path.join(dir, x.slice(0, 2), x), path.join(dir, x.slice(0, 2), x));
    expect(await code(a.has(x))).toBe('EK_ALLOWLIST_UNAVAILABLE');
    // entry is a directory, not a file
    await mkdir(path.join(dir, y.slice(0, 2), y), { recursive: true });
    expect(await code(a.has(y))).toBe('EK_ALLOWLIST_UNAVAILABLE');
    // ENOTDIR: the bucket is a file
    if (z.slice(0, 2) !== x.slice(0, 2) && z.slice(0, 2) !== y.slice(0, 2)) {
      await writeFile(path.join(dir, z.slice(0, 2)), 'not a directory');
      expect(await code(a.has(z))).toBe('EK_ALLOWLIST_UNAVAILABLE');
    }
    // the allowlist root itself is a file
    await writeFile(path.join(dir, 'file'), '');
    expect(await code(new DirectoryEkAllowlist(path.join(dir, 'file')).has(x))).toBe('EK_ALLOWLIST_UNAVAILABLE');
  });

  it('refuses a relative directory at construction (programmer error)', () => {
    expect(() => new DirectoryEkAllowlist('relative/dir')).toThrow(TypeError);
  });
});
