/**
 * EK allowlist: the owner's list of EKs (hex SHA-256 of DER SPKI) whose TPMs may enrol.
 *
 * DirectoryEkAllowlist stores one file per EK at `<dir>/<first two hex chars>/<hash>`, so a
 * lookup is a single stat() whatever the number of entries (no directory scans, bounded
 * directory sizes: 256 buckets). Any error other than "no such file" fails closed with
 * EK_ALLOWLIST_UNAVAILABLE: a broken disk must never read as "not listed" *or* "listed".
 * Entries are added only through the admin API/CLI or by the owner writing files; nothing on the
 * attestation path can add one.
 */
import { mkdir, readdir, stat, unlink } from 'node:fs/promises';
import path from 'node:path';
import { writeFileAtomic } from './atomic-write.js';
import { IdentityStoreError } from './errors.js';
import { normaliseEkHash } from './ek-hash.js';

export interface EkAllowlistEntryMeta {
  /** Free text for the owner (asset tag, host name); never used in decisions. */
  readonly note?: string;
  readonly addedAt: string;
}

export interface EkAllowlist {
  /** True when the EK is listed. Throws EK_HASH_INVALID / EK_ALLOWLIST_UNAVAILABLE (deny on throw). */
  has(ekHash: string): Promise<boolean>;
  /** Add (or replace) an entry. */
  add(ekHash: string, meta?: { note?: string; now?: Date }): Promise<void>;
  /** Remove an entry; false when it was not listed. */
  remove(ekHash: string): Promise<boolean>;
  /** All listed hashes, sorted (admin use: this one scans). */
  list(): Promise<string[]>;
}

function unavailable(err: unknown): IdentityStoreError {
  return new IdentityStoreError('EK_ALLOWLIST_UNAVAILABLE', 'EK allowlist cannot be read', { cause: err });
}

const isErrno = (err: unknown, code: string): boolean => (err as NodeJS.ErrnoException | null)?.code === code;

export class DirectoryEkAllowlist implements EkAllowlist {
  constructor(private readonly dir: string) {
    if (typeof dir !== 'string' || !path.isAbsolute(dir)) throw new TypeError('EK allowlist directory must be an absolute path');
  }

  private entryPath(hash: string): string {
    return path.join(this.dir, hash.slice(0, 2), hash);
  }

  async has(ekHash: string): Promise<boolean> {
    const h = normaliseEkHash(ekHash);
    try {
      const st = await stat(this.entryPath(h));
      // SECURITY: only a regular file lists an EK; a directory or device at that path is
      // tampering or damage, and is treated as an error rather than "listed" (fail closed).
      if (!st.isFile()) throw new Error('allowlist entry is not a regular file');
      return true;
    } catch (err) {
      // SECURITY: only ENOENT means "not listed"; EACCES, EIO, ENOTDIR... fail closed so a broken
      // or tampered store never silently changes the answer (issue 3: "any error fails closed").
      if (isErrno(err, 'ENOENT')) return false;
      throw unavailable(err);
    }
  }

  async add(ekHash: string, meta: { note?: string; now?: Date } = {}): Promise<void> {
    const h = normaliseEkHash(ekHash);
    const entry: EkAllowlistEntryMeta = { addedAt: (meta.now ?? new Date()).toISOString(), ...(meta.note !== undefined ? { note: meta.note } : {}) };
    try {
      await mkdir(path.join(this.dir, h.slice(0, 2)), { recursive: true, mode: 0o700 });
      await writeFileAtomic(this.entryPath(h), `${JSON.stringify(entry)}\n`);
    } catch (err) {
      throw unavailable(err);
    }
  }

  async remove(ekHash: string): Promise<boolean> {
    const h = normaliseEkHash(ekHash);
    try {
      await unlink(this.entryPath(h));
      return true;
    } catch (err) {
      if (isErrno(err, 'ENOENT')) return false;
      throw unavailable(err);
    }
  }

  async list(): Promise<string[]> {
    const out: string[] = [];
    try {
      for (const bucket of await readdir(this.dir, { withFileTypes: true })) {
        if (!bucket.isDirectory() || !/^[0-9a-f]{2}$/.test(bucket.name)) continue;
        for (const f of await readdir(path.join(this.dir, bucket.name), { withFileTypes: true })) {
          if (f.isFile() && /^[0-9a-f]{64}$/.test(f.name) && f.name.startsWith(bucket.name)) out.push(f.name);
        }
      }
    } catch (err) {
      if (isErrno(err, 'ENOENT')) return [];
      throw unavailable(err);
    }
    return out.sort();
  }
}

/** In-memory allowlist (tests, or a deployment that configures its list at start). */
export class MemoryEkAllowlist implements EkAllowlist {
  private readonly entries = new Map<string, EkAllowlistEntryMeta>();

  constructor(initial: Iterable<string> = []) {
    for (const h of initial) this.entries.set(normaliseEkHash(h), { addedAt: new Date(0).toISOString() });
  }

  async has(ekHash: string): Promise<boolean> {
    return this.entries.has(normaliseEkHash(ekHash));
  }

  async add(ekHash: string, meta: { note?: string; now?: Date } = {}): Promise<void> {
    this.entries.set(normaliseEkHash(ekHash), { addedAt: (meta.now ?? new Date()).toISOString(), ...(meta.note !== undefined ? { note: meta.note } : {}) });
  }

  async remove(ekHash: string): Promise<boolean> {
    return this.entries.delete(normaliseEkHash(ekHash));
  }

  async list(): Promise<string[]> {
    return [...this.entries.keys()].sort();
  }
}
