/**
 * `cert.pem` and `bundle.pem` in --node-cert-dir: the files SPIRE's x509pop agent plugin reads as
 * `certificate_path` (the node certificate) and `intermediates_path` (the node CA chain from
 * `GET /kbs/v0/node-ca`). Each is replaced atomically (temp file, fsync, rename): a reader sees the
 * old file or the new one, never a torn one. Both are public (0644); only key.pem is private.
 */
import { createHash } from 'node:crypto';
import { lstat, readFile, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { SubjectAlternativeNameExtension, X509Certificate } from './x509.js';
import { writeFileAtomic } from '@keyhold/atomic-file';
import { AgentError } from '../errors.js';
import type { HeldCertificate } from './renewal.js';

export const NODE_CERT_FILE = 'cert.pem';
export const NODE_BUNDLE_FILE = 'bundle.pem';
/** Largest certificate file read back at start (a leaf is about 1 KiB). */
const MAX_CERT_FILE_BYTES = 64 * 1024;

/** Facts of a PEM certificate: validity, serial, public-key digest, URI SANs. */
export interface CertificateFacts extends HeldCertificate {
  readonly serial: string;
  readonly uris: readonly string[];
}

/** Parse the first certificate of a PEM text. Throws on anything that is not a certificate. */
export function certificateFacts(pem: string): CertificateFacts {
  const cert = new X509Certificate(pem);
  const spki = new Uint8Array(cert.publicKey.rawData);
  const san = cert.getExtension(SubjectAlternativeNameExtension);
  const uris = (san?.names.items ?? []).filter((n) => n.type === 'url').map((n) => n.value);
  return {
    notBeforeMs: cert.notBefore.getTime(),
    notAfterMs: cert.notAfter.getTime(),
    spkiSha256: createHash('sha256').update(spki).digest('hex'),
    serial: cert.serialNumber.toLowerCase(),
    uris,
  };
}

/** The certificate currently in `<dir>/cert.pem`, or undefined when absent or unreadable (then it is renewed). */
export async function readHeldCertificate(dir: string): Promise<CertificateFacts | undefined> {
  const file = join(dir, NODE_CERT_FILE);
  try {
    const st = await lstat(file);
    if (!st.isFile() || st.size > MAX_CERT_FILE_BYTES) return undefined;
    return certificateFacts(await readFile(file, 'utf8'));
  } catch {
    return undefined;
  }
}

/** Write the node CA bundle, then the node certificate, each atomically. */
export async function writeNodeCertFiles(dir: string, files: { certificatePem: string; bundlePem: string }): Promise<void> {
  try {
    // The bundle first: a reader that sees the new certificate also sees a chain that covers it.
    await writeFileAtomic(join(dir, NODE_BUNDLE_FILE), files.bundlePem, 0o644);
    await writeFileAtomic(join(dir, NODE_CERT_FILE), files.certificatePem, 0o644);
  } catch (err) {
    throw new AgentError('NODE_CERT_FILES', `cannot write the node certificate into ${dir}`, { cause: err });
  }
}

/** Remove `<dir>/cert.pem` (the node is no longer vouched for); false when there was none. */
export async function removeNodeCert(dir: string): Promise<boolean> {
  try {
    await unlink(join(dir, NODE_CERT_FILE));
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw new AgentError('NODE_CERT_FILES', `cannot remove ${join(dir, NODE_CERT_FILE)}`, { cause: err });
  }
}
