import type { BigIntStats } from 'node:fs';
import type { RecordFields } from '../internal/record-codec.js';

/**
 * What the embedded store remembers about one resource directory: its version numbers and the
 * (still sealed) records read so far, valid while the directory's identity and timestamps are those
 * seen when it was listed. Values are never cached in plaintext: records stay sealed and are
 * authenticated and decrypted on every `get`.
 */
interface CachedDir {
  readonly dev: bigint;
  readonly ino: bigint;
  readonly mtimeNs: bigint;
  readonly ctimeNs: bigint;
  readonly versions: readonly number[];
  readonly records: Map<number, { fields: RecordFields; bytes: number }>;
}

export interface ReadCacheOptions {
  /** Total bytes of sealed records held (default 8 MiB); least recently used names go first. */
  readonly maxBytes?: number;
  /** Records larger than this are never cached (default 256 KiB). */
  readonly maxRecordBytes?: number;
  /** Wall clock in ms, to judge whether a directory timestamp is too recent to trust. */
  readonly now?: () => number;
}

/**
 * A directory's timestamp only proves "unchanged" once it is older than the file system's timestamp
 * granularity: Linux stamps with a coarse clock (a jiffy, up to 10 ms), so a change made within the
 * same tick as the listing could leave mtime equal. A listing is cached only when the directory was
 * last changed at least this long ago ("racy" entries, as git calls them, are re-read every time).
 */
export const RACY_WINDOW_MS = 1000;

/**
 * Read cache of the embedded store, validated on every use (one `stat` of the resource directory,
 * instead of `readdir` + `open` + `fstat` + `read` + `close`).
 *
 * Invalidation: version files are immutable and every change to a resource (a new version, a prune,
 * a delete, a rotation) adds, removes or renames entries of its directory, which changes the
 * directory's mtime/ctime, or its inode when the directory is deleted and re-created. A cached
 * listing is used only if inode, mtime and ctime are all unchanged, so writes by another store
 * object or another process sharing the directory are seen on the next read. This process's own
 * writes also drop the entry at once (`invalidate`). A directory changed less than
 * `RACY_WINDOW_MS` before it was listed is not cached (see above). Anything else — a missing
 * directory, an I/O error — bypasses the cache.
 */
export class RecordReadCache {
  readonly #entries = new Map<string, CachedDir>();
  readonly #maxBytes: number;
  readonly #maxRecordBytes: number;
  readonly #now: () => number;
  #bytes = 0;

  constructor(options: ReadCacheOptions = {}) {
    this.#maxBytes = options.maxBytes ?? 8 * 1024 * 1024;
    this.#maxRecordBytes = options.maxRecordBytes ?? 256 * 1024;
    this.#now = options.now ?? Date.now;
    if (!Number.isInteger(this.#maxBytes) || this.#maxBytes < 0) throw new TypeError('maxBytes is a non-negative integer');
  }

  /** The cached version list of `name` if `st` (a fresh stat of its directory) proves it current. */
  versions(name: string, st: BigIntStats): readonly number[] | undefined {
    const e = this.#valid(name, st);
    return e?.versions;
  }

  /** Remember the version list read right after `st` was taken (stat first, then readdir). */
  storeVersions(name: string, st: BigIntStats, versions: readonly number[]): void {
    this.invalidate(name);
    // A change within the timestamp granularity of this listing would be invisible: do not trust it.
    const settled = BigInt(Math.floor(this.#now()) - RACY_WINDOW_MS) * 1_000_000n;
    if (st.mtimeNs > settled || st.ctimeNs > settled) return;
    this.#entries.set(name, { dev: st.dev, ino: st.ino, mtimeNs: st.mtimeNs, ctimeNs: st.ctimeNs, versions: [...versions], records: new Map() });
  }

  /** A cached sealed record of `name`, if its directory is unchanged since it was read. */
  record(name: string, version: number, st: BigIntStats): RecordFields | undefined {
    const e = this.#valid(name, st);
    return e?.records.get(version)?.fields;
  }

  /** Remember a record read while the directory's stat was `st` (only if that listing is cached). */
  storeRecord(name: string, version: number, st: BigIntStats, fields: RecordFields, bytes: number): void {
    const e = this.#valid(name, st);
    if (e === undefined || bytes > this.#maxRecordBytes || e.records.has(version)) return;
    e.records.set(version, { fields, bytes });
    this.#bytes += bytes;
    while (this.#bytes > this.#maxBytes && this.#entries.size > 0) {
      const oldest = this.#entries.keys().next().value as string;
      this.invalidate(oldest);
    }
  }

  /** Forget `name` (this process changed it, or it could not be validated). */
  invalidate(name: string): void {
    const e = this.#entries.get(name);
    if (e === undefined) return;
    for (const r of e.records.values()) this.#bytes -= r.bytes;
    this.#entries.delete(name);
  }

  /** Bytes of sealed records held (for tests and metrics). */
  get bytes(): number {
    return this.#bytes;
  }

  #valid(name: string, st: BigIntStats): CachedDir | undefined {
    const e = this.#entries.get(name);
    if (e === undefined) return undefined;
    if (e.dev !== st.dev || e.ino !== st.ino || e.mtimeNs !== st.mtimeNs || e.ctimeNs !== st.ctimeNs) {
      this.invalidate(name);
      return undefined;
    }
    // Most recently used last, so eviction takes the coldest name first.
    this.#entries.delete(name);
    this.#entries.set(name, e);
    return e;
  }
}
