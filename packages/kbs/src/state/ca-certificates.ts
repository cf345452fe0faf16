/** EK CA certificates as every backend handles them: decode an upload, describe, snapshot. */
import { createHash } from 'node:crypto';
import { decodeCaCertificates, IdentityError, type X509Certificate } from '@keyhold/verifier';
import type { CaStoreEntry } from '../identity/ca-store.js';
import { IdentityStoreError } from '../identity/errors.js';
import type { EkCaSnapshot } from './ports.js';

const SHA256_HEX = /^[0-9a-f]{64}$/;
/** Bound on the certificates one store holds (configured directory plus uploads). */
export const MAX_CA_CERTIFICATES = 10_000;

export interface CaCertificate {
  readonly certificate: X509Certificate;
  readonly sha256: string;
}

/** Decode a PEM/DER upload or file; CA_STORE_INVALID (400 on the admin API) when it is not CA certificates. */
export function decodeCaUpload(bytes: Uint8Array, label: string): CaCertificate[] {
  try {
    return decodeCaCertificates(bytes, label).map((certificate) => ({ certificate, sha256: certificateSha256(certificate) }));
  } catch (err) {
    if (err instanceof IdentityError) throw new IdentityStoreError('CA_STORE_INVALID', err.message, { cause: err });
    throw err;
  }
}

export function certificateSha256(c: X509Certificate): string {
  return createHash('sha256').update(new Uint8Array(c.rawData)).digest('hex');
}

export function isSha256Hex(s: string): boolean {
  return typeof s === 'string' && SHA256_HEX.test(s);
}

/** The file name of an uploaded certificate (the convention of the embedded store, kept in Redis too). */
export function uploadFileName(sha256: string): string {
  return `${sha256}.pem`;
}

export function certificatePem(c: X509Certificate): string {
  return `${c.toString('pem')}\n`;
}

/** A snapshot of `files` (name → certificates), in file-name order, each certificate once. */
export function caSnapshot(version: number, files: ReadonlyMap<string, readonly CaCertificate[]>): EkCaSnapshot {
  const certificates: X509Certificate[] = [];
  const entries: CaStoreEntry[] = [];
  const seen = new Set<string>();
  for (const name of [...files.keys()].sort()) {
    for (const c of files.get(name) ?? []) {
      if (seen.has(c.sha256)) continue;
      seen.add(c.sha256);
      certificates.push(c.certificate);
      entries.push(Object.freeze({ file: name, subject: c.certificate.subject, issuer: c.certificate.issuer, notAfter: c.certificate.notAfter.toISOString(), sha256: c.sha256 }));
    }
  }
  return Object.freeze({ version, certificates: Object.freeze(certificates), entries: Object.freeze(entries) });
}
