import { mkdir, readdir, readFile, stat, unlink } from 'node:fs/promises';
import path from 'node:path';
import { syncDir, writeFileAtomic } from '@keyhold/atomic-file';
import { normaliseEkHash } from '../../identity/ek-hash.js';
import { StateError } from '../errors.js';
import type { EkAllowlistEntry, EkAllowlistState } from '../ports.js';

const isErrno = (err: unknown, code: string): boolean => (err as NodeJS.ErrnoException | null)?.code === code;
const unavailable = (cause: unknown): StateError => new StateError('STATE_UNAVAILABLE', 'EK allowlist cannot be read or written', { cause });
const MAX_NOTE_CHARS = 1024;

export function checkNote(note: string | undefined): void {
  if (note !== undefined && (typeof note !== 'string' || note.length > MAX_NOTE_CHARS)) throw new TypeError('allowlist note must be a string of at most 1024 characters');
}

/**
 * The EK allowlist as a directory: one file per EK at `<dir>/<first two hex>/<hash>` holding
 * `{"addedAt","note"?}` (the layout the KBS always used; an owner may still drop files in by hand,
 * and they count at once). `has` is one stat(); writes go through one serial queue, each durable
 * (file and directory fsync'd) before it resolves.
 */
export class DirectoryEkAllowlist implements EkAllowlistState {
  readonly #dir: string;
  #queue: Promise<unknown> = Promise.resolve();

  constructor(dir: string) {
    if (typeof dir !== 'string' || !path.isAbsolute(dir)) throw new TypeError('EK allowlist directory must be an absolute path');
    this.#dir = dir;
  }

  #file(hash: string): string {
    return path.join(this.#dir, hash.slice(0, 2), hash);
  }

  #serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.#queue.then(fn, fn);
    this.#queue = run.catch(() => undefined);
    return run;
  }

  async has(ekHash: string): Promise<boolean> {
    const h = normaliseEkHash(ekHash);
    try {
      const st = await stat(this.#file(h));
      // SECURITY: only a regular file lists an EK (a symlink counts by its target, as before); a
      // directory or device at that path is tampering or damage and fails closed.
      if (!st.isFile()) throw new Error('allowlist entry is not a regular file');
      return true;
    } catch (err) {
      // SECURITY: only ENOENT means "not listed"; EACCES, EIO, ENOTDIR... fail closed so a broken
      // or tampered store never silently changes the answer.
      if (isErrno(err, 'ENOENT')) return false;
      throw unavailable(err);
    }
  }

  async add(ekHash: string, meta: { readonly note?: string; readonly now?: Date } = {}): Promise<void> {
    const h = normaliseEkHash(ekHash);
    checkNote(meta.note);
    const entry = { addedAt: (meta.now ?? new Date()).toISOString(), ...(meta.note !== undefined ? { note: meta.note } : {}) };
    return this.#serial(async () => {
      try {
        const bucket = path.join(this.#dir, h.slice(0, 2));
        await mkdir(bucket, { recursive: true, mode: 0o700 });
        await writeFileAtomic(this.#file(h), `${JSON.stringify(entry)}\n`);
        await syncDir(this.#dir);
      } catch (err) {
        throw unavailable(err);
      }
    });
  }

  async remove(ekHash: string): Promise<boolean> {
    const h = normaliseEkHash(ekHash);
    return this.#serial(async () => {
      try {
        await unlink(this.#file(h));
        await syncDir(path.dirname(this.#file(h)));
        return true;
      } catch (err) {
        if (isErrno(err, 'ENOENT')) return false;
        throw unavailable(err);
      }
    });
  }

  async list(): Promise<readonly EkAllowlistEntry[]> {
    const out: EkAllowlistEntry[] = [];
    try {
      for (const bucket of await readdir(this.#dir, { withFileTypes: true })) {
        if (!bucket.isDirectory() || !/^[0-9a-f]{2}$/.test(bucket.name)) continue;
        for (const f of await readdir(path.join(this.#dir, bucket.name), { withFileTypes: true })) {
          if (!f.isFile() || !/^[0-9a-f]{64}$/.test(f.name) || !f.name.startsWith(bucket.name)) continue;
          out.push(await readEntry(path.join(this.#dir, bucket.name, f.name), f.name));
        }
      }
    } catch (err) {
      if (isErrno(err, 'ENOENT')) return [];
      throw unavailable(err);
    }
    return out.sort((a, b) => (a.ekHash < b.ekHash ? -1 : 1));
  }
}

/** An entry's metadata; a hand-written file without our JSON is listed with its mtime. */
async function readEntry(file: string, ekHash: string): Promise<EkAllowlistEntry> {
  const st = await stat(file);
  if (st.size <= 4096) {
    try {
      const v = JSON.parse(await readFile(file, 'utf8')) as { addedAt?: unknown; note?: unknown };
      if (typeof v.addedAt === 'string' && v.addedAt.length <= 64) {
        return { ekHash, addedAt: v.addedAt, ...(typeof v.note === 'string' ? { note: v.note.slice(0, MAX_NOTE_CHARS) } : {}) };
      }
    } catch {
      // not our JSON: listed with its mtime below
    }
  }
  return { ekHash, addedAt: st.mtime.toISOString() };
}

/** The allowlist in memory (memory state). */
export class MemoryEkAllowlist implements EkAllowlistState {
  readonly #entries = new Map<string, EkAllowlistEntry>();

  async has(ekHash: string): Promise<boolean> {
    return this.#entries.has(normaliseEkHash(ekHash));
  }

  async add(ekHash: string, meta: { readonly note?: string; readonly now?: Date } = {}): Promise<void> {
    const h = normaliseEkHash(ekHash);
    checkNote(meta.note);
    this.#entries.set(h, { ekHash: h, addedAt: (meta.now ?? new Date()).toISOString(), ...(meta.note !== undefined ? { note: meta.note } : {}) });
  }

  async remove(ekHash: string): Promise<boolean> {
    return this.#entries.delete(normaliseEkHash(ekHash));
  }

  async list(): Promise<readonly EkAllowlistEntry[]> {
    return [...this.#entries.values()].sort((a, b) => (a.ekHash < b.ekHash ? -1 : 1));
  }
}
