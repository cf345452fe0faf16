/**
 * A keyed store kept in memory and persisted as a snapshot plus an append-only journal, with group
 * commit: mutations arriving while a write is in flight are decided in order against the state
 * they will follow, written together in one O_DSYNC append, and resolve only once that append is
 * durable. Reads see committed (durable) state only. This is the write path of the embedded node
 * records, where a write per attestation must cost a fraction of a file rewrite.
 *
 * Files in `dir` (all JSON lines):
 *   <name>.snapshot       header {"format":1,"store":name,"gen":G,"count":N}, N lines {"k","v"}, {"end":N}
 *   <name>.journal        header {"format":1,"store":name,"gen":G}, then {"k","v"} or {"k","del":1}
 *   <name>.journal.next   a journal started by a compaction whose snapshot is not yet renamed in
 *
 * Compaction runs in the background when the journal outgrows the snapshot: new writes go to a
 * fresh `.journal.next` (gen G+1) while snapshot G+1 is streamed out; then `.next` is renamed to
 * `.journal`. A crash at any step leaves files the loader understands (see `load`), and a torn last
 * line (crash mid-append) is dropped. Any other damage is STATE_CORRUPT: fail closed, never guess.
 */
import { constants } from 'node:fs';
import { mkdir, open, readFile, rename, stat, unlink, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { syncDir, writeFileAtomic } from '@keyhold/atomic-file';
import { StateError } from '../errors.js';

export interface JournalCodec<V> {
  /** The JSON-able form of a value, as written to a line. */
  encode(key: string, value: V): unknown;
  /** A value read back from disk; throws StateError STATE_CORRUPT when it does not fit. */
  decode(key: string, raw: unknown): V;
  /** Whether a key read back from disk is well-formed. */
  isKey(key: string): boolean;
}

/** What a mutation decides: the keys to set (value) or delete (undefined), and its result. */
export interface JournalDecision<T, V> {
  readonly changes: readonly (readonly [string, V | undefined])[];
  readonly result: T;
}

export interface JournalView<V> {
  get(key: string): V | undefined;
}

export interface JournalStoreOptions<V> {
  /** Directory of the files; undefined keeps everything in memory (tests, memory state). */
  readonly dir: string | undefined;
  /** File name stem, e.g. `nodes`. */
  readonly name: string;
  readonly codec: JournalCodec<V>;
  /** Compact once the journal exceeds max(this, the last snapshot's size). Default 4 MiB. */
  readonly compactMinBytes?: number;
  /** Content to import when the store does not exist yet (one-time migration of a legacy layout). */
  readonly initial?: () => Promise<ReadonlyMap<string, V>>;
}

/** Bound on one line read back (a record is at most 64 KiB of JSON plus its key). */
const MAX_LINE_CHARS = 256 * 1024;
/** Bound on one file read back at open. */
const MAX_FILE_BYTES = 1024 * 1024 * 1024;
const SNAPSHOT_CHUNK_LINES = 2000;

interface Pending<V> {
  readonly decide: (view: JournalView<V>) => JournalDecision<unknown, V>;
  readonly resolve: (v: unknown) => void;
  readonly reject: (e: unknown) => void;
}

const unavailable = (what: string, cause: unknown): StateError => new StateError('STATE_UNAVAILABLE', what, { cause });

export class JournalStore<V> {
  readonly #dir: string | undefined;
  readonly #name: string;
  readonly #codec: JournalCodec<V>;
  readonly #compactMinBytes: number;
  readonly #committed = new Map<string, V>();
  #keysVersion = 0;
  #pending: Pending<V>[] = [];
  #draining = false;
  #drained: Promise<void> = Promise.resolve();
  #fh: FileHandle | undefined;
  /** Durable length of the active journal file. */
  #size = 0;
  #gen = 0;
  #snapshotBytes = 0;
  #compaction: Promise<void> | undefined;
  #compactionBroken = false;
  /** Set when a failed append could not be rolled back: the file may hold a partial batch. */
  #failed: StateError | undefined;
  #closed = false;

  private constructor(options: JournalStoreOptions<V>) {
    this.#dir = options.dir;
    this.#name = options.name;
    this.#codec = options.codec;
    this.#compactMinBytes = options.compactMinBytes ?? 4 * 1024 * 1024;
  }

  static async open<V>(options: JournalStoreOptions<V>): Promise<JournalStore<V>> {
    if (!/^[a-z0-9-]{1,32}$/.test(options.name)) throw new TypeError('journal name must match ^[a-z0-9-]{1,32}$');
    const compactMinBytes = options.compactMinBytes ?? 4 * 1024 * 1024;
    if (!Number.isSafeInteger(compactMinBytes) || compactMinBytes < 1) throw new TypeError('compactMinBytes must be a positive integer');
    const s = new JournalStore(options);
    if (options.dir === undefined) {
      if (options.initial !== undefined) for (const [k, v] of await options.initial()) s.#committed.set(k, v);
      return s;
    }
    await s.#load(options.initial);
    return s;
  }

  /** The committed value of `key`. */
  get(key: string): V | undefined {
    return this.#committed.get(key);
  }

  get size(): number {
    return this.#committed.size;
  }

  /** Changes whenever a key is added or removed (not on updates): lets callers cache sorted keys. */
  get keysVersion(): number {
    return this.#keysVersion;
  }

  keys(): IterableIterator<string> {
    return this.#committed.keys();
  }

  /**
   * Decide and persist one mutation. `decide` runs once, synchronously, against the committed state
   * plus every mutation queued before it; it must not have side effects and may throw to refuse
   * (nothing is written then). Resolves with its result once the changes are durable.
   */
  mutate<T>(decide: (view: JournalView<V>) => JournalDecision<T, V>): Promise<T> {
    if (this.#closed) return Promise.reject(new StateError('STATE_UNAVAILABLE', `${this.#name} store is closed`));
    return new Promise<T>((resolve, reject) => {
      this.#pending.push({ decide, resolve: resolve as (v: unknown) => void, reject });
      if (!this.#draining) {
        this.#draining = true;
        this.#drained = this.#drain();
      }
    });
  }

  async close(): Promise<void> {
    this.#closed = true;
    await this.#drained;
    if (this.#compaction !== undefined) await this.#compaction;
    await this.#fh?.close();
    this.#fh = undefined;
  }

  async #drain(): Promise<void> {
    // Let mutations issued in the same tick join the first batch.
    await Promise.resolve();
    while (this.#pending.length > 0) {
      const batch = this.#pending;
      this.#pending = [];
      const overlay = new Map<string, V | undefined>();
      const view: JournalView<V> = { get: (k) => (overlay.has(k) ? overlay.get(k) : this.#committed.get(k)) };
      const outcomes: { ok: boolean; value: unknown }[] = [];
      const lines: string[] = [];
      for (const op of batch) {
        try {
          const d = op.decide(view);
          const staged: string[] = [];
          for (const [k, v] of d.changes) staged.push(v === undefined ? JSON.stringify({ k, del: 1 }) : JSON.stringify({ k, v: this.#codec.encode(k, v) }));
          for (const [k, v] of d.changes) overlay.set(k, v);
          lines.push(...staged);
          outcomes.push({ ok: true, value: d.result });
        } catch (err) {
          outcomes.push({ ok: false, value: err });
        }
      }
      let writeError: unknown;
      if (lines.length > 0) {
        try {
          await this.#append(`${lines.join('\n')}\n`);
        } catch (err) {
          writeError = err;
        }
      }
      if (writeError === undefined) {
        for (const [k, v] of overlay) {
          if (v === undefined) {
            if (this.#committed.delete(k)) this.#keysVersion++;
          } else {
            if (!this.#committed.has(k)) this.#keysVersion++;
            this.#committed.set(k, v);
          }
        }
      }
      batch.forEach((op, i) => {
        const o = outcomes[i]!;
        if (!o.ok) op.reject(o.value);
        else if (writeError !== undefined && lines.length > 0) op.reject(writeError);
        else op.resolve(o.value);
      });
      await this.#maybeCompact();
    }
    // No await between the last check of #pending and this: a mutation queued later starts a new drain.
    this.#draining = false;
  }

  async #append(text: string): Promise<void> {
    if (this.#dir === undefined) return;
    if (this.#failed !== undefined) throw this.#failed;
    const fh = this.#fh;
    if (fh === undefined) throw new StateError('STATE_UNAVAILABLE', `${this.#name} journal is not open`);
    const buf = Buffer.from(text, 'utf8');
    try {
      // O_APPEND | O_DSYNC: the write returns once the data and the size change are durable.
      const { bytesWritten } = await fh.write(buf, 0, buf.length);
      if (bytesWritten !== buf.length) throw new Error(`short write (${bytesWritten} of ${buf.length} bytes)`);
      this.#size += buf.length;
    } catch (cause) {
      // Roll the file back to its last durable length so a partial batch never precedes later lines.
      try {
        await fh.truncate(this.#size);
        await fh.datasync();
      } catch (truncateError) {
        this.#failed = unavailable(`${this.#name} journal is damaged by a failed write; restart the KBS`, truncateError);
      }
      throw unavailable(`${this.#name} journal cannot be written`, cause);
    }
  }

  #paths(): { snapshot: string; journal: string; next: string } {
    const base = path.join(this.#dir as string, this.#name);
    return { snapshot: `${base}.snapshot`, journal: `${base}.journal`, next: `${base}.journal.next` };
  }

  #header(gen: number): string {
    return `${JSON.stringify({ format: 1, store: this.#name, gen })}\n`;
  }

  /**
   * Called by #drain between batches. When the journal has outgrown the snapshot, switch appends to
   * a fresh `.journal.next` now (so the snapshot taken here is exactly the state every line of the
   * old journal produced) and stream the snapshot out in the background.
   */
  async #maybeCompact(): Promise<void> {
    if (this.#dir === undefined || this.#compaction !== undefined || this.#compactionBroken || this.#closed || this.#failed !== undefined) return;
    if (this.#size <= Math.max(this.#compactMinBytes, this.#snapshotBytes)) return;
    const p = this.#paths();
    const gen = this.#gen + 1;
    const entries = [...this.#committed];
    let next: FileHandle | undefined;
    try {
      await writeFileAtomic(p.next, this.#header(gen));
      next = await open(p.next, constants.O_RDWR | constants.O_APPEND | constants.O_DSYNC);
    } catch {
      await next?.close().catch(() => undefined);
      await unlink(p.next).catch(() => undefined);
      this.#compactionBroken = true;
      return;
    }
    const old = this.#fh;
    this.#fh = next;
    this.#size = Buffer.byteLength(this.#header(gen));
    this.#gen = gen;
    await old?.close().catch(() => undefined);
    this.#compaction = this.#writeCompactedSnapshot(gen, entries).finally(() => {
      this.#compaction = undefined;
    });
  }

  async #writeCompactedSnapshot(gen: number, entries: readonly (readonly [string, V])[]): Promise<void> {
    const p = this.#paths();
    try {
      let bytes = 0;
      const name = this.#name;
      const codec = this.#codec;
      await writeFileAtomic(
        p.snapshot,
        (async function* () {
          const head = `${JSON.stringify({ format: 1, store: name, gen, count: entries.length })}\n`;
          bytes += Buffer.byteLength(head);
          yield head;
          for (let i = 0; i < entries.length; i += SNAPSHOT_CHUNK_LINES) {
            const chunk = entries
              .slice(i, i + SNAPSHOT_CHUNK_LINES)
              .map(([k, v]) => `${JSON.stringify({ k, v: codec.encode(k, v) })}\n`)
              .join('');
            bytes += Buffer.byteLength(chunk);
            yield chunk;
            // Let requests run between chunks: a large snapshot must not stall the event loop.
            await new Promise((r) => setImmediate(r));
          }
          const end = `${JSON.stringify({ end: entries.length })}\n`;
          bytes += Buffer.byteLength(end);
          yield end;
        })(),
      );
      // The fd stays valid across the rename: appends continue into the same file.
      await rename(p.next, p.journal);
      await syncDir(this.#dir as string);
      this.#snapshotBytes = bytes;
    } catch {
      // The files are still consistent (snapshot G-1 + journal G-1 + next G, or snapshot G + next G);
      // the loader replays them at the next open. Do not compact again in this process.
      this.#compactionBroken = true;
    }
  }

  async #load(initial: (() => Promise<ReadonlyMap<string, V>>) | undefined): Promise<void> {
    const dir = this.#dir as string;
    const p = this.#paths();
    try {
      await mkdir(dir, { recursive: true, mode: 0o700 });
    } catch (cause) {
      throw unavailable(`${this.#name} store directory cannot be created`, cause);
    }
    const snapshotText = await readOptional(p.snapshot);
    const journalText = await readOptional(p.journal);
    const nextText = await readOptional(p.next);
    let snapGen = 0;
    let maxGen = 0;
    let normalise = false;
    if (snapshotText === undefined && journalText === undefined && nextText === undefined) {
      // A new store: import the legacy content once, then persist it as snapshot 1.
      const imported = initial === undefined ? new Map<string, V>() : await initial();
      for (const [k, v] of imported) this.#committed.set(k, v);
      normalise = true;
    } else {
      if (snapshotText !== undefined) snapGen = this.#loadSnapshot(snapshotText);
      const j = journalText === undefined ? undefined : this.#parseJournal(journalText, nextText === undefined);
      const n = nextText === undefined ? undefined : this.#parseJournal(nextText, true);
      const corrupt = (): StateError => new StateError('STATE_CORRUPT', `${this.#name} store files do not fit together (snapshot ${snapGen}, journal ${j?.gen}, next ${n?.gen})`);
      // A journal older than the snapshot is contained in it (a snapshot of generation S holds the
      // state produced by every journal before S). Journals of generation S, then S+1, follow it:
      //   snapshot G,   journal G                  normal
      //   snapshot G,   journal G, next G+1        compaction started, its snapshot never landed
      //   snapshot G+1, journal G, next G+1        the snapshot landed, the rename did not
      const liveJ = j !== undefined && j.gen >= snapGen ? j : undefined;
      const liveN = n !== undefined && n.gen >= snapGen ? n : undefined;
      if (liveJ !== undefined && liveJ.gen !== snapGen) throw corrupt();
      if (liveN !== undefined && !(liveN.gen === snapGen ? liveJ === undefined : liveN.gen === snapGen + 1 && liveJ !== undefined)) throw corrupt();
      if (snapshotText === undefined && liveJ === undefined && liveN === undefined) throw corrupt();
      if (liveJ !== undefined) this.#replay(liveJ.lines);
      if (liveN !== undefined) this.#replay(liveN.lines);
      maxGen = Math.max(snapGen, j?.gen ?? 0, n?.gen ?? 0);
      // Anything but "snapshot G + journal G" is rewritten into that shape now.
      if (n !== undefined || liveJ === undefined || j?.torn === true) normalise = true;
      else this.#gen = liveJ.gen;
    }
    try {
      if (normalise) {
        // Rewrite everything as one snapshot plus an empty journal of the next generation.
        const gen = maxGen + 1;
        this.#snapshotBytes = await this.#writeSnapshot(p.snapshot, gen);
        await writeFileAtomic(p.journal, this.#header(gen));
        await unlink(p.next).catch((err: NodeJS.ErrnoException) => {
          if (err.code !== 'ENOENT') throw err;
        });
        await syncDir(dir);
        this.#gen = gen;
      } else {
        this.#snapshotBytes = snapshotText === undefined ? 0 : Buffer.byteLength(snapshotText);
      }
      this.#fh = await open(p.journal, constants.O_RDWR | constants.O_APPEND | constants.O_DSYNC);
      this.#size = (await this.#fh.stat()).size;
    } catch (cause) {
      await this.#fh?.close().catch(() => undefined);
      throw unavailable(`${this.#name} store cannot be written`, cause);
    }
  }

  async #writeSnapshot(file: string, gen: number): Promise<number> {
    const lines = [`${JSON.stringify({ format: 1, store: this.#name, gen, count: this.#committed.size })}\n`];
    for (const [k, v] of this.#committed) lines.push(`${JSON.stringify({ k, v: this.#codec.encode(k, v) })}\n`);
    lines.push(`${JSON.stringify({ end: this.#committed.size })}\n`);
    const text = lines.join('');
    await writeFileAtomic(file, text);
    return Buffer.byteLength(text);
  }

  #loadSnapshot(text: string): number {
    const corrupt = (why: string, cause?: unknown): StateError => new StateError('STATE_CORRUPT', `${this.#name}.snapshot is corrupt: ${why}`, { cause });
    const lines = splitLines(text, corrupt);
    // SECURITY: a snapshot is written atomically, so anything but a complete one (header, count
    // entries, end marker) is damage or tampering: refuse to start rather than run on a subset.
    if (lines.torn) throw corrupt('incomplete last line');
    const head = parseLine(lines.lines[0], corrupt) as { format?: unknown; store?: unknown; gen?: unknown; count?: unknown };
    if (head.format !== 1 || head.store !== this.#name || !isGen(head.gen) || !Number.isSafeInteger(head.count)) throw corrupt('bad header');
    const count = head.count as number;
    if (lines.lines.length !== count + 2) throw corrupt('entry count does not match');
    const end = parseLine(lines.lines[count + 1], corrupt) as { end?: unknown };
    if (end.end !== count) throw corrupt('bad end marker');
    for (let i = 1; i <= count; i++) {
      const e = parseLine(lines.lines[i], corrupt) as { k?: unknown; v?: unknown };
      if (typeof e.k !== 'string' || !this.#codec.isKey(e.k) || !('v' in e)) throw corrupt(`bad entry on line ${i + 1}`);
      if (this.#committed.has(e.k)) throw corrupt(`duplicate key on line ${i + 1}`);
      this.#committed.set(e.k, this.#codec.decode(e.k, e.v));
    }
    return head.gen as number;
  }

  #parseJournal(text: string, isLast: boolean): { gen: number; lines: string[]; torn: boolean } {
    const corrupt = (why: string, cause?: unknown): StateError => new StateError('STATE_CORRUPT', `${this.#name} journal is corrupt: ${why}`, { cause });
    const { lines, torn } = splitLines(text, corrupt);
    // SECURITY: only the very last line of the active journal may be torn (a crash mid-append);
    // it was never acknowledged, so it is dropped. Damage anywhere else fails closed.
    if (torn && !isLast) throw corrupt('incomplete last line in a closed journal');
    if (lines.length === 0) {
      if (torn) throw corrupt('torn header');
      throw corrupt('empty journal');
    }
    const head = parseLine(lines[0], corrupt) as { format?: unknown; store?: unknown; gen?: unknown };
    if (head.format !== 1 || head.store !== this.#name || !isGen(head.gen)) throw corrupt('bad header');
    return { gen: head.gen as number, lines: lines.slice(1), torn };
  }

  #replay(lines: readonly string[]): void {
    const corrupt = (why: string, cause?: unknown): StateError => new StateError('STATE_CORRUPT', `${this.#name} journal is corrupt: ${why}`, { cause });
    for (const line of lines) {
      const e = parseLine(line, corrupt) as { k?: unknown; v?: unknown; del?: unknown };
      if (typeof e.k !== 'string' || !this.#codec.isKey(e.k)) throw corrupt('bad key');
      if (e.del === 1) this.#committed.delete(e.k);
      else if ('v' in e) this.#committed.set(e.k, this.#codec.decode(e.k, e.v));
      else throw corrupt('bad entry');
    }
  }
}

function isGen(v: unknown): boolean {
  return Number.isSafeInteger(v) && (v as number) >= 0;
}

async function readOptional(file: string): Promise<string | undefined> {
  try {
    const st = await stat(file);
    // SECURITY: bound what is read at open (a planted huge file must not exhaust memory).
    if (st.size > MAX_FILE_BYTES) throw new StateError('STATE_CORRUPT', `${path.basename(file)} is larger than ${MAX_FILE_BYTES} bytes`);
    return await readFile(file, 'utf8');
  } catch (err) {
    if (err instanceof StateError) throw err;
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw unavailable(`${path.basename(file)} cannot be read`, err);
  }
}

/** Split into complete lines; `torn` when the text does not end with a newline (the rest is dropped). */
function splitLines(text: string, corrupt: (why: string) => StateError): { lines: string[]; torn: boolean } {
  const torn = text.length > 0 && !text.endsWith('\n');
  const body = torn ? text.slice(0, text.lastIndexOf('\n') + 1) : text;
  const lines = body.length === 0 ? [] : body.slice(0, -1).split('\n');
  for (const l of lines) if (l.length > MAX_LINE_CHARS) throw corrupt('over-long line');
  return { lines, torn };
}

function parseLine(line: string | undefined, corrupt: (why: string, cause?: unknown) => StateError): unknown {
  if (line === undefined) throw corrupt('missing line');
  try {
    const v = JSON.parse(line) as unknown;
    if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new Error('not an object');
    return v;
  } catch (cause) {
    throw corrupt('unparsable line', cause);
  }
}
