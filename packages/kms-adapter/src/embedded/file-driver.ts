import { randomBytes } from 'node:crypto';
import { closeSync, constants, fstatSync, openSync, promises as fs, readdirSync, readSync, statSync, type BigIntStats } from 'node:fs';
import path from 'node:path';
import { KmsError } from '../errors.js';
import { isValidSegment, MAX_VERSION } from '../resource-name.js';
import { fsyncDir, writeFileNoClobber, type BeforeCommitHook } from '../internal/atomic-file.js';
import type { RecordFields } from '../internal/record-codec.js';
import type { StorageDriver } from '../internal/versioned-store.js';
import { RecordReadCache, type ReadCacheOptions } from './read-cache.js';

const VERSION_FILE = /^([1-9][0-9]{0,8})\.rec$/;

/**
 * Secrets as files: `<dir>/secrets/<repo>/<type>/<tag>/<version>.rec`, each a JSON sealed record,
 * created once and never rewritten.
 *
 * Multi-process behaviour: version creation is safe across processes sharing the directory, because
 * a version file is created with link(2), which fails if the name exists (a cross-process
 * compare-and-set; the loser retries with the next number), so no version is lost or duplicated.
 * The latest version is always the highest number. One corner case remains: a writer in another
 * process that stalls between reading the latest number N and creating N+1, while others write and
 * prune N+1 away, still creates N+1; it then sits below the latest as an older version until the
 * next prune (never above it). Deleting a resource while another process writes to it is linearisable per file
 * but not across the resource: the other process may recreate it. Local file systems only (no NFS).
 *
 * Reads (the release hot path) use synchronous calls: a record is a small file in a local directory,
 * normally in the page cache, so listing and reading it takes a few microseconds on the event loop,
 * where the asynchronous calls cost five thread-pool round trips (readdir, open, fstat, read, close)
 * that compete with WebCrypto for the pool. Writes stay asynchronous (they fsync).
 *
 * Listings and sealed records are cached (`RecordReadCache`): a read then costs one `stat` of the
 * resource directory, which proves the cached listing current (see read-cache.ts for why that holds
 * across store objects and processes). Writes always list afresh and drop the entry.
 */
export class FileDriver implements StorageDriver {
  readonly backend = 'embedded' as const;
  readonly #root: string;
  readonly #trash: string;
  readonly #maxRecordBytes: number;
  readonly #beforeCommit: BeforeCommitHook | undefined;
  readonly #cache: RecordReadCache;

  constructor(dir: string, maxRecordBytes: number, beforeCommit?: BeforeCommitHook, cache?: ReadCacheOptions) {
    this.#root = path.join(dir, 'secrets');
    this.#trash = path.join(dir, '.trash');
    this.#maxRecordBytes = maxRecordBytes;
    this.#beforeCommit = beforeCommit;
    this.#cache = new RecordReadCache(cache);
  }

  /** The read cache, for tests. */
  get readCache(): RecordReadCache {
    return this.#cache;
  }

  async init(): Promise<void> {
    await io(async () => {
      await fs.mkdir(this.#root, { recursive: true, mode: 0o700 });
      await fs.mkdir(this.#trash, { recursive: true, mode: 0o700 });
      // Finish deletions a crash interrupted.
      for (const e of await fs.readdir(this.#trash)) await fs.rm(path.join(this.#trash, e), { recursive: true, force: true });
    });
  }

  #dir(name: string): string {
    // Names reaching a driver were validated by parseResourceName: three plain segments.
    return path.join(this.#root, ...name.split('/'));
  }

  #versionNumbers(name: string): number[] {
    let entries: string[];
    try {
      entries = readdirSync(this.#dir(name));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw unavailable(err);
    }
    const out: number[] = [];
    for (const e of entries) {
      // Temp files (`.tmp-*`) and anything else that is not a version file are ignored.
      const m = VERSION_FILE.exec(e);
      if (m !== null) out.push(Number(m[1]));
    }
    return out.sort((a, b) => a - b);
  }

  /** The resource directory's stat, undefined when it does not exist. */
  #statDir(name: string): BigIntStats | undefined {
    try {
      return statSync(this.#dir(name), { bigint: true, throwIfNoEntry: false });
    } catch (err) {
      throw unavailable(err);
    }
  }

  /** Version numbers for reading: the cached listing if the directory is unchanged, else a fresh one. */
  #readableVersions(name: string): { versions: readonly number[]; st: BigIntStats | undefined } {
    // stat first, then list: a change between the two makes the next stat differ, never the reverse.
    const st = this.#statDir(name);
    if (st === undefined) {
      this.#cache.invalidate(name);
      return { versions: [], st };
    }
    const cached = this.#cache.versions(name, st);
    if (cached !== undefined) return { versions: cached, st };
    const versions = this.#versionNumbers(name);
    this.#cache.storeVersions(name, st, versions);
    return { versions, st };
  }

  #readRecord(name: string, version: number, st: BigIntStats): RecordFields | undefined {
    const hit = this.#cache.record(name, version, st);
    if (hit !== undefined) return hit;
    const got = this.#readSync(name, version);
    if (got !== undefined) this.#cache.storeRecord(name, version, st, got.fields, got.bytes);
    return got?.fields;
  }

  async latestVersion(name: string): Promise<number> {
    // Writers always list afresh (compare-and-set decisions never rest on a cache).
    return this.#versionNumbers(name).at(-1) ?? 0;
  }

  async readLatest(name: string): Promise<{ version: number; fields: RecordFields } | undefined> {
    // A concurrent prune in another process can remove what we just listed; look again.
    for (let i = 0; i < 3; i++) {
      const { versions, st } = this.#readableVersions(name);
      const version = versions.at(-1) ?? 0;
      if (version === 0 || st === undefined) return undefined;
      const fields = this.#readRecord(name, version, st);
      if (fields !== undefined) return { version, fields };
      this.#cache.invalidate(name);
    }
    return undefined;
  }

  async read(name: string, version: number): Promise<RecordFields | undefined> {
    const { versions, st } = this.#readableVersions(name);
    if (st === undefined || !versions.includes(version)) return undefined;
    return this.#readRecord(name, version, st);
  }

  #readSync(name: string, version: number): { fields: RecordFields; bytes: number } | undefined {
    const file = path.join(this.#dir(name), `${version}.rec`);
    let fd: number;
    try {
      fd = openSync(file, constants.O_RDONLY | constants.O_NOFOLLOW);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      if ((err as NodeJS.ErrnoException).code === 'ELOOP') throw corrupt(name, version);
      throw unavailable(err);
    }
    try {
      const st = fstatSync(fd);
      // SECURITY: check the size before reading a file into memory (resource exhaustion).
      if (!st.isFile() || st.size > this.#maxRecordBytes) throw corrupt(name, version);
      const buf = Buffer.allocUnsafe(st.size);
      let got = 0;
      while (got < st.size) {
        const n = readSync(fd, buf, got, st.size - got, got);
        if (n === 0) break;
        got += n;
      }
      return { fields: parseRecord(buf.toString('utf8', 0, got), name, version), bytes: got };
    } finally {
      closeSync(fd);
    }
  }

  async readAll(name: string): Promise<Array<{ version: number; fields: RecordFields }>> {
    const out: Array<{ version: number; fields: RecordFields }> = [];
    for (const version of this.#versionNumbers(name)) {
      const fields = this.#readSync(name, version)?.fields;
      if (fields !== undefined) out.push({ version, fields });
    }
    return out;
  }

  async names(): Promise<string[]> {
    const out: string[] = [];
    const sub = async (dir: string): Promise<string[]> => {
      try {
        const entries = await fs.readdir(dir, { withFileTypes: true });
        // SECURITY: only real directories with valid segment names; symlinks and stray files are
        // not followed, so the listing cannot be pointed outside the store (CWE-59).
        return entries.filter((e) => e.isDirectory() && isValidSegment(e.name)).map((e) => e.name);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
        throw unavailable(err);
      }
    };
    for (const repo of await sub(this.#root)) {
      for (const type of await sub(path.join(this.#root, repo))) {
        for (const tag of await sub(path.join(this.#root, repo, type))) {
          const name = `${repo}/${type}/${tag}`;
          if ((await this.latestVersion(name)) > 0) out.push(name);
        }
      }
    }
    return out;
  }

  async commit(name: string, expected: number, fields: RecordFields, keep: number): Promise<boolean> {
    const dir = this.#dir(name);
    const version = expected + 1;
    if (version > MAX_VERSION) return false;
    this.#cache.invalidate(name);
    return io(async () => {
      await fs.mkdir(dir, { recursive: true, mode: 0o700 });
      try {
        await writeFileNoClobber(path.join(dir, `${version}.rec`), Buffer.from(JSON.stringify(fields), 'utf8'), 0o600, this.#beforeCommit);
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        // EEXIST: another process created this version first. ENOENT: the resource was deleted
        // under us. Both mean "not the latest any more": let the caller retry.
        if (code === 'EEXIST' || code === 'ENOENT') return false;
        throw err;
      }
      const all = this.#versionNumbers(name);
      const excess = all.length - keep;
      for (const old of all.slice(0, Math.max(0, excess))) {
        await fs.unlink(path.join(dir, `${old}.rec`)).catch(() => undefined);
      }
      if (excess > 0) await fsyncDir(dir);
      return true;
    }).finally(() => this.#cache.invalidate(name));
  }

  async remove(name: string): Promise<boolean> {
    this.#cache.invalidate(name);
    if ((await this.latestVersion(name)) === 0) return false;
    return io(async () => {
      // Rename first (atomic), then delete at leisure: a crash never leaves half a resource visible.
      const grave = path.join(this.#trash, randomBytes(8).toString('hex'));
      try {
        await fs.rename(this.#dir(name), grave);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
        throw err;
      }
      await fsyncDir(path.dirname(this.#dir(name)));
      await fs.rm(grave, { recursive: true, force: true });
      return true;
    }).finally(() => this.#cache.invalidate(name));
  }

  close(): Promise<void> {
    return Promise.resolve();
  }
}

function parseRecord(text: string, name: string, version: number): RecordFields {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    throw corrupt(name, version);
  }
  // SECURITY: a record is a flat object of strings; anything else is corruption or tampering.
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw corrupt(name, version);
  for (const v of Object.values(raw)) if (typeof v !== 'string') throw corrupt(name, version);
  return raw as RecordFields;
}

function corrupt(name: string, version: number): KmsError {
  return new KmsError('KMS_CORRUPT', `stored record for ${name} v${version} is malformed`);
}

function unavailable(cause: unknown): KmsError {
  if (cause instanceof KmsError) return cause;
  return new KmsError('KMS_UNAVAILABLE', `secret directory I/O failed (${(cause as NodeJS.ErrnoException).code ?? 'unknown'})`, { cause });
}

async function io<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    throw unavailable(err);
  }
}
