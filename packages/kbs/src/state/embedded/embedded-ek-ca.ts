import { lstat, mkdir, readdir, readFile, unlink } from 'node:fs/promises';
import path from 'node:path';
import { syncDir, writeFileAtomic } from '@keyhold/atomic-file';
import { MAX_CA_FILE_BYTES } from '@keyhold/verifier';
import type { CaStoreEntry } from '../../identity/ca-store.js';
import { IdentityStoreError } from '../../identity/errors.js';
import { StateError } from '../errors.js';
import { caSnapshot, certificatePem, decodeCaUpload, isSha256Hex, MAX_CA_CERTIFICATES, uploadFileName, type CaCertificate } from '../ca-certificates.js';
import type { EkCaSnapshot, EkCaState } from '../ports.js';

const MAX_FILES = 10_000;

/**
 * Read every regular, non-hidden file of a CA directory (PEM/DER, several certificates per file).
 * Any file that does not decode fails the whole load (fail closed: a damaged store must not
 * silently shrink or grow the set of trusted manufacturers). An absent directory is empty.
 */
export async function readCaDirectory(dir: string, options: { readonly required?: boolean } = {}): Promise<Map<string, CaCertificate[]>> {
  const files = new Map<string, CaCertificate[]>();
  let names: string[];
  try {
    names = (await readdir(dir)).filter((n) => !n.startsWith('.')).sort();
  } catch (err) {
    // An explicitly configured directory that is missing is a configuration error (a typo must not
    // silently empty the trust store); the default one simply has no certificates yet.
    if ((err as NodeJS.ErrnoException).code === 'ENOENT' && options.required !== true) return files;
    throw new StateError('STATE_UNAVAILABLE', `EK CA directory ${dir} cannot be read`, { cause: err });
  }
  if (names.length > MAX_FILES) throw new StateError('STATE_CORRUPT', `EK CA directory has more than ${MAX_FILES} files`);
  for (const name of names) {
    const file = path.join(dir, name);
    let bytes: Uint8Array;
    try {
      const st = await lstat(file);
      if (!st.isFile()) continue;
      // SECURITY: bound file size before reading (a huge file must not exhaust memory at start).
      if (st.size > MAX_CA_FILE_BYTES) throw new StateError('STATE_CORRUPT', `EK CA file ${name} is too large`);
      bytes = new Uint8Array(await readFile(file));
    } catch (err) {
      if (err instanceof StateError) throw err;
      throw new StateError('STATE_UNAVAILABLE', `EK CA file ${name} cannot be read`, { cause: err });
    }
    try {
      files.set(name, decodeCaUpload(bytes, name));
    } catch (cause) {
      if (cause instanceof IdentityStoreError) throw new StateError('STATE_CORRUPT', `EK CA file ${name}: ${cause.message}`, { cause });
      throw cause;
    }
  }
  return files;
}

/**
 * EK CA certificates of one process: the configured directory, read at open, plus admin uploads,
 * written into that directory as `<sha256>.pem` (the KBS's layout since uploads existed) or kept in
 * memory when there is no directory. Writes are serial; a snapshot is immutable and free.
 */
export class EmbeddedEkCa implements EkCaState {
  readonly #dir: string | undefined;
  readonly #files: Map<string, CaCertificate[]>;
  #snapshot: EkCaSnapshot;
  #queue: Promise<unknown> = Promise.resolve();

  private constructor(dir: string | undefined, writable: boolean, files: Map<string, CaCertificate[]>) {
    this.#dir = writable ? dir : undefined;
    this.#files = files;
    this.#snapshot = caSnapshot(1, files);
  }

  /**
   * `dir`: the configured directory (read at open; `required`: it must exist). `writable`: uploads are
   * written there (embedded); otherwise they are kept in memory only (memory state).
   */
  static async open(dir: string | undefined, writable: boolean, required = false): Promise<EmbeddedEkCa> {
    if (dir !== undefined && !path.isAbsolute(dir)) throw new TypeError('EK CA directory must be an absolute path');
    return new EmbeddedEkCa(dir, writable, dir === undefined ? new Map() : await readCaDirectory(dir, { required }));
  }

  async snapshot(): Promise<EkCaSnapshot> {
    return this.#snapshot;
  }

  async add(upload: Uint8Array): Promise<{ readonly added: readonly CaStoreEntry[]; readonly alreadyPresent: readonly CaStoreEntry[] }> {
    const certs = decodeCaUpload(upload, 'upload');
    return this.#serial(async () => {
      const present = new Map(this.#snapshot.entries.map((e) => [e.sha256, e]));
      const added: CaStoreEntry[] = [];
      const alreadyPresent: CaStoreEntry[] = [];
      const fresh: CaCertificate[] = [];
      for (const c of certs) {
        const e = present.get(c.sha256);
        if (e !== undefined) alreadyPresent.push(e);
        else if (!fresh.some((f) => f.sha256 === c.sha256)) fresh.push(c);
      }
      if (fresh.length === 0) return { added, alreadyPresent };
      // SECURITY: bounded, so uploads cannot grow the trust store (and every snapshot) without limit.
      if (this.#snapshot.certificates.length + fresh.length > MAX_CA_CERTIFICATES) throw new IdentityStoreError('CA_STORE_INVALID', `the EK CA store holds at most ${MAX_CA_CERTIFICATES} certificates`);
      for (const c of fresh) {
        const name = uploadFileName(c.sha256);
        if (this.#dir !== undefined) {
          try {
            await mkdir(this.#dir, { recursive: true, mode: 0o700 });
            await writeFileAtomic(path.join(this.#dir, name), certificatePem(c.certificate));
          } catch (cause) {
            this.#publish();
            throw new StateError('STATE_UNAVAILABLE', 'EK CA store cannot be written', { cause });
          }
        }
        this.#files.set(name, [c]);
      }
      this.#publish();
      for (const c of fresh) {
        const e = this.#snapshot.entries.find((x) => x.sha256 === c.sha256);
        if (e !== undefined) added.push(e);
      }
      return { added, alreadyPresent };
    });
  }

  async remove(sha256: string): Promise<boolean> {
    const h = typeof sha256 === 'string' ? sha256.toLowerCase() : '';
    // SECURITY: the hash becomes a file name; only 64 hex characters (path traversal, CWE-22).
    if (!isSha256Hex(h)) throw new IdentityStoreError('CA_STORE_INVALID', 'certificate hash must be 64 hex characters');
    return this.#serial(async () => {
      const name = uploadFileName(h);
      if (!this.#files.has(name)) return false;
      if (this.#dir !== undefined) {
        try {
          await unlink(path.join(this.#dir, name));
          await syncDir(this.#dir);
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw new StateError('STATE_UNAVAILABLE', 'EK CA store cannot be written', { cause: err });
        }
      }
      this.#files.delete(name);
      this.#publish();
      return true;
    });
  }

  #publish(): void {
    this.#snapshot = caSnapshot(this.#snapshot.version + 1, this.#files);
  }

  #serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.#queue.then(fn, fn);
    this.#queue = run.catch(() => undefined);
    return run;
  }
}
