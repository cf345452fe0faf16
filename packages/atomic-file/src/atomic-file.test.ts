import { fork, spawn } from 'node:child_process';
import { mkdtemp, mkdir, readdir, readFile, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { hostname, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { AtomicFileError, acquireDirLock, removeStaleTempFiles, writeFileAtomic } from './index.js';

const root = await mkdtemp(join(tmpdir(), 'kh-atomic-'));
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

/** The pid of a process that has exited (its pid is free). */
async function deadPid(): Promise<number> {
  const child = spawn(process.execPath, ['-e', ''], { stdio: 'ignore' });
  const pid = child.pid as number;
  await new Promise((r) => child.once('exit', r));
  return pid;
}

async function lockError(p: Promise<unknown>): Promise<AtomicFileError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(AtomicFileError);
  return err as AtomicFileError;
}

describe('writeFileAtomic', () => {
  it('replaces content, with the requested mode, and leaves no temp file', async () => {
    const dir = join(root, 'w');
    await mkdir(dir);
    const file = join(dir, 'f.json');
    await writeFileAtomic(file, 'one');
    await writeFileAtomic(file, Buffer.from('two'), 0o640);
    expect(await readFile(file, 'utf8')).toBe('two');
    expect((await stat(file)).mode & 0o777).toBe(0o640);
    expect(await readdir(dir)).toEqual(['f.json']);
  });

  it('fails (no partial file) when the directory does not exist, and refuses bad arguments', async () => {
    await expect(writeFileAtomic(join(root, 'missing', 'f'), 'x')).rejects.toMatchObject({ code: 'ENOENT' });
    await expect(writeFileAtomic('', 'x')).rejects.toBeInstanceOf(TypeError);
    await expect(writeFileAtomic(join(root, 'f'), 'x', 0o1777)).rejects.toBeInstanceOf(TypeError);
  });

  it('concurrent writers to one file: the file is always one complete value', async () => {
    const file = join(root, 'race.txt');
    await Promise.all(Array.from({ length: 20 }, (_, i) => writeFileAtomic(file, String(i).repeat(10_000))));
    const text = await readFile(file, 'utf8');
    expect(text.length % 10_000 === 0 || text.length % 20_000 === 0).toBe(true);
    expect(new Set(text.match(/.{1,10000}/g)).size).toBe(1);
  });
});

describe('removeStaleTempFiles', () => {
  it('removes only our temp names of dead or unknown writers; keeps live ones, other files and symlinks', async () => {
    const dir = join(root, 'stale');
    await mkdir(join(dir, 'ab', 'cd'), { recursive: true });
    const dead = await deadPid();
    const files = {
      deadCurrent: join(dir, `.nodes.journal.${dead}.0123456789ab.kh-tmp`),
      liveCurrent: join(dir, `.nodes.journal.${process.pid}.0123456789ab.kh-tmp`),
      legacyNoPid: join(dir, 'ab', '.f.json.a1b2c3d4e5f6.tmp'),
      legacyPolicy: join(dir, `policies.json.tmp-${dead}-a1b2c3d4e5f6`),
      legacyPolicyLive: join(dir, `policies.json.tmp-${process.pid}-a1b2c3d4e5f6`),
      deep: join(dir, 'ab', 'cd', `.x.${dead}.0123456789ab.kh-tmp`),
      notOurs: join(dir, 'notes.tmp'),
      notOurs2: join(dir, '.x.0123456789ab.tmp.bak'),
      real: join(dir, 'reference-values.json'),
    };
    for (const f of Object.values(files)) await writeFile(f, 'x');
    await symlink(files.real, join(dir, `.link.${dead}.0123456789ab.kh-tmp`));
    const removed = await removeStaleTempFiles(dir, { maxDepth: 1 });
    expect(removed.sort()).toEqual([files.deadCurrent, files.legacyNoPid, files.legacyPolicy].sort());
    // Depth 1 did not reach ab/cd; depth 2 does.
    expect(await removeStaleTempFiles(dir, { maxDepth: 2 })).toEqual([files.deep]);
    const left = await readdir(dir);
    for (const keep of [files.liveCurrent, files.legacyPolicyLive, files.notOurs, files.notOurs2, files.real]) expect(left).toContain(keep.slice(dir.length + 1));
    expect(left).toContain(`.link.${dead}.0123456789ab.kh-tmp`);
    expect(await removeStaleTempFiles(join(root, 'no-such-dir'))).toEqual([]);
    await expect(removeStaleTempFiles(dir, { maxDepth: -1 })).rejects.toBeInstanceOf(TypeError);
  });
});

describe('acquireDirLock', () => {
  it('locks, refuses a second holder naming the pid, and releases', async () => {
    const dir = join(root, 'lock1');
    await mkdir(dir);
    const lock = await acquireDirLock(dir);
    expect(JSON.parse(await readFile(lock.path, 'utf8'))).toMatchObject({ pid: process.pid, host: hostname() });
    const err = await lockError(acquireDirLock(dir));
    expect(err.code).toBe('DIR_LOCKED');
    expect(err.holderPid).toBe(process.pid);
    expect(err.message).toContain(String(process.pid));
    await lock.release();
    await lock.release();
    expect(await readdir(dir)).toEqual([]);
    const again = await acquireDirLock(dir);
    await again.release();
  });

  it('refuses while another live process holds it; takes over once that process is killed', async () => {
    const dir = join(root, 'lock2');
    await mkdir(dir);
    const holder = fork(join(dirname(fileURLToPath(import.meta.url)), 'lock-holder.test-support.ts'), [dir], {
      execArgv: ['--import', 'tsx'],
      stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
    });
    const exited = new Promise((r) => holder.once('exit', r));
    try {
      await new Promise<void>((resolve, reject) => {
        holder.once('message', () => resolve());
        holder.once('exit', (code) => reject(new Error(`holder exited early (${code})`)));
      });
      const err = await lockError(acquireDirLock(dir));
      expect(err.code).toBe('DIR_LOCKED');
      expect(err.holderPid).toBe(holder.pid);
    } finally {
      holder.kill('SIGKILL');
      await exited;
    }
    // The SIGKILLed holder left its lock file behind: it is stale now.
    expect(JSON.parse(await readFile(join(dir, 'keyhold.lock'), 'utf8')).pid).toBe(holder.pid);
    const lock = await acquireDirLock(dir);
    expect(JSON.parse(await readFile(lock.path, 'utf8')).pid).toBe(process.pid);
    await lock.release();
  }, 30_000);

  it('takes over a lock with a recycled pid (same pid, other start time)', async () => {
    const dir = join(root, 'lock3');
    await mkdir(dir);
    // Our own pid but a start time that is not ours: the holder died and the pid was reused.
    await writeFile(join(dir, 'keyhold.lock'), JSON.stringify({ pid: process.pid, host: hostname(), start: '1' }));
    const lock = await acquireDirLock(dir);
    await lock.release();
  });

  it('concurrent takeovers of one stale lock: exactly one wins', async () => {
    const dir = join(root, 'lock4');
    await mkdir(dir);
    await writeFile(join(dir, 'keyhold.lock'), JSON.stringify({ pid: await deadPid(), host: hostname() }));
    const results = await Promise.allSettled(Array.from({ length: 6 }, () => acquireDirLock(dir)));
    const won = results.filter((r) => r.status === 'fulfilled');
    expect(won).toHaveLength(1);
    for (const r of results) if (r.status === 'rejected') expect((r.reason as AtomicFileError).code).toBe('DIR_LOCKED');
    await (won[0] as PromiseFulfilledResult<{ release(): Promise<void> }>).value.release();
    expect(await readdir(dir)).toEqual([]);
  });

  it('refuses a lock held on another host, and an unreadable lock file, without removing them', async () => {
    const dir = join(root, 'lock5');
    await mkdir(dir);
    const file = join(dir, 'keyhold.lock');
    await writeFile(file, JSON.stringify({ pid: await deadPid(), host: 'other-host.example' }));
    const remote = await lockError(acquireDirLock(dir));
    expect(remote.code).toBe('DIR_LOCKED');
    expect(remote.holderHost).toBe('other-host.example');
    await writeFile(file, 'garbage');
    expect((await lockError(acquireDirLock(dir))).code).toBe('DIR_LOCK_INVALID');
    expect(await readFile(file, 'utf8')).toBe('garbage');
    expect((await readdir(dir)).filter((n) => n !== 'keyhold.lock')).toEqual([]);
    await expect(acquireDirLock(dir, { fileName: '../x' })).rejects.toBeInstanceOf(TypeError);
  });
});

describe('writeFileAtomic with streamed chunks', () => {
  it('writes every chunk of an async iterable, in order', async () => {
    const file = join(root, 'chunks.txt');
    async function* chunks(): AsyncIterable<string | Uint8Array> {
      for (let i = 0; i < 100; i++) yield i % 2 === 0 ? `${i},` : Buffer.from(`${i},`);
    }
    await writeFileAtomic(file, chunks());
    expect(await readFile(file, 'utf8')).toBe(Array.from({ length: 100 }, (_, i) => `${i},`).join(''));
  });
});
