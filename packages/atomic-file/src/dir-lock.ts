import { hostname } from 'node:os';
import { link, mkdir, open, readFile, rmdir, stat, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { AtomicFileError } from './errors.js';
import { processExists, processStartTicks } from './process-alive.js';
import { syncDir } from './write-file-atomic.js';
import { tempPathFor } from './temp-name.js';

/** A held directory lock. */
export interface DirLock {
  /** The lock file. */
  readonly path: string;
  /** Remove the lock file if it is still ours. Safe to call twice. */
  release(): Promise<void>;
}

export interface AcquireDirLockOptions {
  /** Lock file name inside the directory (default `keyhold.lock`). */
  readonly fileName?: string;
}

interface LockContent {
  readonly pid: number;
  readonly host: string;
  /** Process start time (Linux clock ticks), to tell a recycled pid from the holder. */
  readonly start?: string;
}

const LOCK_NAME = /^[A-Za-z0-9._-]{1,64}$/;
/** A takeover guard older than this was left by a crash during a takeover. */
const TAKEOVER_GUARD_STALE_MS = 10_000;
const MAX_ATTEMPTS = 50;

/**
 * Take `dir`'s lock file, so that a second process using the same directory is refused instead of
 * corrupting it. The file holds the holder's pid, host and process start time. If another live
 * process holds it, this throws DIR_LOCKED naming that pid (`holderPid`); a lock left by a dead
 * process (same host, pid gone or recycled) is taken over. The lock is created with link(2) from a
 * complete temp file, so it is never observed half-written, and a takeover is guarded by an atomic
 * mkdir so that two starting processes cannot both take over the same stale lock.
 */
export async function acquireDirLock(dir: string, options: AcquireDirLockOptions = {}): Promise<DirLock> {
  const name = options.fileName ?? 'keyhold.lock';
  if (!LOCK_NAME.test(name)) throw new TypeError('acquireDirLock: fileName must match ^[A-Za-z0-9._-]{1,64}$');
  const path = join(dir, name);
  const guard = `${path}.takeover`;
  const start = processStartTicks(process.pid);
  const mine: LockContent = { pid: process.pid, host: hostname(), ...(start === undefined ? {} : { start }) };
  const text = `${JSON.stringify(mine)}\n`;
  const tmp = tempPathFor(path);
  const fh = await open(tmp, 'wx', 0o600);
  try {
    await fh.writeFile(text);
    await fh.sync();
  } finally {
    await fh.close();
  }
  try {
    for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
      if (await tryLink(tmp, path)) {
        await syncDir(dir);
        return lockHandle(dir, path, text);
      }
      const held = await readLock(path);
      if (held === undefined) continue; // released meanwhile: try again
      if (isLive(held.content)) {
        throw new AtomicFileError('DIR_LOCKED', `${dir} is in use by process ${held.content.pid} on ${held.content.host} (lock file ${path})`, {
          holderPid: held.content.pid,
          holderHost: held.content.host,
        });
      }
      // The holder is gone: take over, one process at a time.
      if (!(await takeGuard(guard))) {
        await new Promise((r) => setTimeout(r, 20));
        continue;
      }
      try {
        const again = await readLock(path);
        // Only remove the exact stale lock we judged; if it changed, start over.
        if (again !== undefined && again.raw === held.raw) await unlink(path).catch(ignoreEnoent);
      } finally {
        await rmdir(guard).catch(ignoreEnoent);
      }
    }
    throw new AtomicFileError('DIR_LOCKED', `${dir}: the lock file ${path} kept changing; another process is starting on this directory`);
  } finally {
    await unlink(tmp).catch(ignoreEnoent);
  }
}

function ignoreEnoent(err: unknown): void {
  if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
}

async function tryLink(from: string, to: string): Promise<boolean> {
  try {
    await link(from, to);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw err;
  }
}

async function readLock(path: string): Promise<{ raw: string; content: LockContent } | undefined> {
  let raw: string;
  try {
    raw = await readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
  let parsed: unknown;
  try {
    parsed = raw.length <= 1024 ? JSON.parse(raw) : undefined;
  } catch {
    parsed = undefined;
  }
  const p = parsed as Partial<LockContent> | undefined;
  // SECURITY: a lock we cannot read is not guessed to be stale (that could let two processes share
  // the directory); the operator removes it after checking.
  if (p === undefined || !Number.isSafeInteger(p.pid) || (p.pid as number) < 1 || typeof p.host !== 'string' || (p.start !== undefined && typeof p.start !== 'string')) {
    throw new AtomicFileError('DIR_LOCK_INVALID', `lock file ${path} is not a keyhold lock; remove it if no process uses the directory`);
  }
  return { raw, content: p as LockContent };
}

function isLive(holder: LockContent): boolean {
  // A holder on another host cannot be checked from here: treat it as live (fail closed).
  if (holder.host !== hostname()) return true;
  if (!processExists(holder.pid)) return false;
  if (holder.start === undefined) return true;
  const now = processStartTicks(holder.pid);
  // Same pid, different start time: the pid was recycled after the holder died.
  return now === undefined || now === holder.start;
}

async function takeGuard(guard: string): Promise<boolean> {
  try {
    await mkdir(guard, { mode: 0o700 });
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
  }
  try {
    const st = await stat(guard);
    if (Date.now() - st.mtimeMs > TAKEOVER_GUARD_STALE_MS) await rmdir(guard).catch(ignoreEnoent);
  } catch (err) {
    ignoreEnoent(err);
  }
  return false;
}

function lockHandle(dir: string, path: string, text: string): DirLock {
  let released = false;
  return {
    path,
    async release() {
      if (released) return;
      released = true;
      try {
        // Remove only our own lock (never one a later holder took over).
        if ((await readFile(path, 'utf8')) !== text) return;
        await unlink(path);
        await syncDir(dir);
      } catch (err) {
        ignoreEnoent(err);
      }
    },
  };
}
