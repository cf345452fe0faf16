/**
 * EK CA store: a directory of PEM/DER files holding TPM vendor roots and intermediates (several
 * certificates per PEM file allowed, text around PEM blocks ignored). Loaded once at start and on
 * admin changes; every file must decode, otherwise loading fails (fail closed: a damaged store
 * must not silently shrink or grow the set of trusted manufacturers).
 */
import { createHash } from 'node:crypto';
import { lstat, mkdir, readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { decodeCaCertificates, IdentityError, MAX_CA_FILE_BYTES, type X509Certificate } from '@keyhold/verifier';
import { writeFileAtomic } from '@keyhold/atomic-file';
import { IdentityStoreError } from './errors.js';

export interface CaStoreEntry {
  readonly file: string;
  readonly subject: string;
  readonly issuer: string;
  readonly notAfter: string;
  /** Hex SHA-256 of the certificate DER. */
  readonly sha256: string;
}

export interface CaStore {
  /** Pass to verifyEkCertificate({ caCerts }). */
  readonly certificates: readonly X509Certificate[];
  readonly entries: readonly CaStoreEntry[];
}

const MAX_FILES = 10_000;

function describe(file: string, c: X509Certificate): CaStoreEntry {
  return {
    file,
    subject: c.subject,
    issuer: c.issuer,
    notAfter: c.notAfter.toISOString(),
    sha256: createHash('sha256').update(new Uint8Array(c.rawData)).digest('hex'),
  };
}

function decodeOrThrow(bytes: Uint8Array, file: string): X509Certificate[] {
  try {
    return decodeCaCertificates(bytes, file);
  } catch (err) {
    if (err instanceof IdentityError) throw new IdentityStoreError('CA_STORE_INVALID', err.message, { cause: err });
    throw err;
  }
}

/** Load every regular, non-hidden file in `dir`. Duplicate certificates are kept once. */
export async function loadCaStore(dir: string): Promise<CaStore> {
  if (!path.isAbsolute(dir)) throw new TypeError('CA store directory must be an absolute path');
  let names: string[];
  try {
    names = (await readdir(dir)).filter((n) => !n.startsWith('.')).sort();
  } catch (err) {
    throw new IdentityStoreError('CA_STORE_UNAVAILABLE', 'CA store directory cannot be read', { cause: err });
  }
  if (names.length > MAX_FILES) throw new IdentityStoreError('CA_STORE_INVALID', `CA store has more than ${MAX_FILES} files`);
  const certificates: X509Certificate[] = [];
  const entries: CaStoreEntry[] = [];
  const seen = new Set<string>();
  for (const name of names) {
    const file = path.join(dir, name);
    let bytes: Uint8Array;
    try {
      const st = await lstat(file);
      if (!st.isFile()) continue;
      // SECURITY: bound file size before reading (a huge file must not exhaust memory at start).
      if (st.size > MAX_CA_FILE_BYTES) throw new IdentityStoreError('CA_STORE_INVALID', `${name}: file too large`);
      bytes = new Uint8Array(await readFile(file));
    } catch (err) {
      if (err instanceof IdentityStoreError) throw err;
      throw new IdentityStoreError('CA_STORE_UNAVAILABLE', `${name}: cannot be read`, { cause: err });
    }
    for (const c of decodeOrThrow(bytes, name)) {
      const e = describe(name, c);
      if (seen.has(e.sha256)) continue;
      seen.add(e.sha256);
      certificates.push(c);
      entries.push(e);
    }
  }
  return { certificates, entries };
}

/**
 * Validate a PEM/DER upload (admin API) and store each certificate as `<sha256>.pem` in `dir`.
 * Returns the new entries; an existing identical certificate is simply rewritten.
 */
export async function addCaCertificates(dir: string, upload: Uint8Array): Promise<CaStoreEntry[]> {
  if (!path.isAbsolute(dir)) throw new TypeError('CA store directory must be an absolute path');
  const certs = decodeOrThrow(upload, 'upload');
  const out: CaStoreEntry[] = [];
  try {
    await mkdir(dir, { recursive: true, mode: 0o700 });
    for (const c of certs) {
      const e = describe('', c);
      const file = `${e.sha256}.pem`;
      await writeFileAtomic(path.join(dir, file), c.toString('pem') + '\n');
      out.push({ ...e, file });
    }
  } catch (err) {
    throw new IdentityStoreError('CA_STORE_UNAVAILABLE', 'CA store cannot be written', { cause: err });
  }
  return out;
}
