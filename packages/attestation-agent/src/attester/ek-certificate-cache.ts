import { createPublicKey, randomBytes, X509Certificate } from 'node:crypto';
import { closeSync, fstatSync, openSync, readFileSync } from 'node:fs';
import { mkdir, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { tpm2bPublicToSpkiDer } from '../tpm/public-area.js';
import type { EkAlg } from '../tpm/templates.js';

/** As the NV read: EK certificates are a few KiB. */
const MAX_CERT_BYTES = 16 * 1024;
/** How long a kept certificate stands in for the NV index (a platform may renew the certificate in NV). */
export const EK_CERT_CACHE_MAX_AGE_MS = 24 * 60 * 60 * 1000;

/**
 * The EK certificate as read from the TPM's NV index, kept between runs in the agent's state dir
 * (`ek-<alg>.crt`, DER, 0600) beside the EK public (EkPublicCache), so that a node does not read it
 * from NV on every run: NV_ReadPublic, GetCapability and NV_Read in chunks, five TPM commands and
 * ~4 ms of a get-resource on swtpm.
 *
 * The certificate is public, and the KBS decides on it (its chain to the owner's EK CAs, its key
 * against the EK named beside it, its validity): a kept copy cannot make the KBS trust more than the
 * same bytes sent by any client. Still, a kept certificate is named only while
 *  - its public key is the EK's public key, the EK the TPM vouches for this run (from EkPublicCache,
 *    whose entry the AK's qualified name chains to, or from the EK itself): a certificate of another
 *    key (a swapped or stale file, another TPM) is never named;
 *  - it parses as X.509 and the current time is within its validity (an expired one is read afresh:
 *    the platform may have put a renewed one in NV);
 *  - the copy is less than a day old: a certificate the platform renewed in NV for the same key is
 *    picked up within a day (the TPM itself cannot vouch for NV contents: an NV index's Name covers
 *    its attributes and size, not its data).
 * Otherwise the NV index is read as before and its certificate kept if its key is the EK's. An
 * unreadable or unwritable cache is ignored.
 */
export class EkCertificateCache {
  readonly #dir: string;
  readonly #maxAgeMs: number;
  readonly #now: () => number;

  constructor(stateDir: string, opts: { maxAgeMs?: number; now?: () => number } = {}) {
    this.#dir = stateDir;
    this.#maxAgeMs = opts.maxAgeMs ?? EK_CERT_CACHE_MAX_AGE_MS;
    this.#now = opts.now ?? Date.now;
  }

  #file(alg: EkAlg): string {
    return join(this.#dir, `ek-${alg}.crt`);
  }

  /** The kept certificate of the `alg` EK whose TPM2B_PUBLIC is `ekPublic`, when it may stand in for the NV index (see the class). */
  async lookup(alg: EkAlg, ekPublic: Uint8Array): Promise<Uint8Array | undefined> {
    try {
      // Synchronous: a file of a few KiB in the agent's own state dir, read once per session (four
      // thread-pool round trips otherwise, on the path of every attestation's start).
      const fd = openSync(this.#file(alg), 'r');
      let der: Buffer;
      try {
        const st = fstatSync(fd);
        const age = this.#now() - st.mtimeMs;
        // SECURITY: a copy older than a day (or dated in the future) is read afresh from NV: a renewed certificate is not missed for long (stale cache).
        if (st.size > MAX_CERT_BYTES || age < -60_000 || age > this.#maxAgeMs) return undefined;
        der = readFileSync(fd);
      } finally {
        closeSync(fd);
      }
      return usable(der, ekPublic, this.#now()) ? new Uint8Array(der) : undefined;
    } catch {
      return undefined;
    }
  }

  /** Keep `der` (read from NV) for next time, if it is a certificate of the EK `ekPublic`. */
  async remember(alg: EkAlg, ekPublic: Uint8Array, der: Uint8Array): Promise<void> {
    if (der.length > MAX_CERT_BYTES || !usable(Buffer.from(der), ekPublic, this.#now())) return;
    const file = this.#file(alg);
    const tmp = `${file}.${randomBytes(6).toString('hex')}.tmp`;
    try {
      await mkdir(this.#dir, { recursive: true, mode: 0o700 });
      await writeFile(tmp, der, { mode: 0o600, flag: 'wx' });
      await rename(tmp, file);
    } catch {
      // A cache that cannot be written only costs the next run an NV read.
      await rm(tmp, { force: true }).catch(() => undefined);
    }
  }
}

/** Whether `der` is an X.509 certificate, valid now, whose public key is the EK's. */
function usable(der: Buffer, ekPublic: Uint8Array, nowMs: number): boolean {
  try {
    const cert = new X509Certificate(der);
    // SECURITY: only a certificate of the EK the TPM vouches for is named to the KBS, never one of another key (swapped or stale cache; the KBS checks the same: EK_CERT_KEY_MISMATCH).
    const ek = createPublicKey({ key: Buffer.from(tpm2bPublicToSpkiDer(ekPublic)), format: 'der', type: 'spki' });
    if (!cert.publicKey.equals(ek)) return false;
    // SECURITY: an expired (or not yet valid) copy is read afresh from NV, where the platform may have put a renewed one.
    return Date.parse(cert.validFrom) <= nowMs && nowMs <= Date.parse(cert.validTo);
  } catch {
    return false;
  }
}
