/**
 * The node certificate kept in `--node-cert-dir` by `keyhold-agent run`: the key (key.pem), its
 * binding into every attestation, renewal at two-thirds of the lifetime, and what a refusal does to
 * the files. One instance per daemon; the directory is locked while it runs.
 *
 * After a refusal cert.pem is removed at once (nothing is vouched for after the KBS said no; SPIRE
 * re-attests from these files). After a ban or revocation with `deleteKeyOnBan`, key.pem is deleted
 * too and attestations carry no key binding until one succeeds again; then a new key is made, bound
 * by a second attestation, and certified.
 */
import { acquireDirLock, removeStaleTempFiles, type DirLock } from '@keyhold/atomic-file';
import { buildNodeCsr } from './csr.js';
import { readHeldCertificate, removeNodeCert, writeNodeCertFiles, type CertificateFacts } from './cert-files.js';
import { decodeIssuedCertificate, type IssuedCertificate } from './issued-certificate.js';
import { deleteNodeKey, ensureNodeCertDir, loadOrCreateNodeKey, type NodeKey } from './node-key.js';
import { nodeKeyAdditionalEvidence } from './node-key-binding.js';
import { renewalDueAtMs, renewalNeeded } from './renewal.js';

/** What the certificates need of the KBS client. */
export interface NodeCertificateIssuer {
  requestNodeCertificate(token: string, csrPem: string): Promise<unknown>;
}

export interface NodeCertificatesOptions {
  readonly dir: string;
  readonly deleteKeyOnBan: boolean;
}

export class NodeCertificates {
  readonly dir: string;
  readonly #deleteKeyOnBan: boolean;
  readonly #lock: DirLock;
  #key: NodeKey | undefined;
  #held: CertificateFacts | undefined;

  private constructor(opts: NodeCertificatesOptions, lock: DirLock, key: NodeKey, held: CertificateFacts | undefined) {
    this.dir = opts.dir;
    this.#deleteKeyOnBan = opts.deleteKeyOnBan;
    this.#lock = lock;
    this.#key = key;
    this.#held = held;
  }

  /** Make or open the directory, take its lock, load or make the key, read the certificate there. */
  static async open(opts: NodeCertificatesOptions): Promise<NodeCertificates> {
    await ensureNodeCertDir(opts.dir);
    const lock = await acquireDirLock(opts.dir, { fileName: 'keyhold-agent.lock' });
    try {
      await removeStaleTempFiles(opts.dir, { maxDepth: 0 });
      const key = await loadOrCreateNodeKey(opts.dir);
      const held = await readHeldCertificate(opts.dir);
      return new NodeCertificates(opts, lock, key, held);
    } catch (err) {
      await lock.release();
      throw err;
    }
  }

  /** The key, or undefined while it is deleted after a ban. */
  get key(): NodeKey | undefined {
    return this.#key;
  }

  /** The certificate in cert.pem (as last written or read), if any. */
  get held(): CertificateFacts | undefined {
    return this.#held;
  }

  /** The `additional_evidence` of the next attestation: the key binding, or "" while there is no key. */
  additionalEvidence(): string {
    return this.#key !== undefined ? nodeKeyAdditionalEvidence(this.#key.spkiSha256) : '';
  }

  /** Make a new key after a ban deleted the old one; true when one was made (the caller re-attests to bind it). */
  async restoreKey(): Promise<boolean> {
    if (this.#key !== undefined) return false;
    this.#key = await loadOrCreateNodeKey(this.dir);
    return true;
  }

  /** When the held certificate is due for renewal (ms), undefined when there is none. */
  renewAtMs(): number | undefined {
    return this.#held !== undefined ? renewalDueAtMs(this.#held.notBeforeMs, this.#held.notAfterMs) : undefined;
  }

  /** Whether a certificate should be requested now (none, for another key, expired, or past 2/3 of its life). */
  renewalNeeded(nowMs: number): boolean {
    return this.#key !== undefined && renewalNeeded(this.#held, this.#key.spkiSha256, nowMs);
  }

  /**
   * Ask the KBS for a certificate with `token` (from an attestation that bound the key), check the
   * answer, and write bundle.pem then cert.pem. Refusals throw the client's error unchanged.
   */
  async renew(issuer: NodeCertificateIssuer, token: string, nowMs: number, commonName: string): Promise<IssuedCertificate> {
    const key = this.#key;
    if (key === undefined) throw new TypeError('renew: no node key (restoreKey first)');
    const csr = await buildNodeCsr(key, commonName);
    const answer = await issuer.requestNodeCertificate(token, csr);
    const issued = await decodeIssuedCertificate(answer, key.spkiSha256, nowMs);
    await writeNodeCertFiles(this.dir, { certificatePem: issued.certificatePem, bundlePem: issued.chainPem });
    this.#held = issued.facts;
    return issued;
  }

  /**
   * The KBS refused the node: remove cert.pem; when `banned` (banned or revoked) and the daemon was
   * asked to, delete key.pem as well.
   */
  async onRefused(banned: boolean): Promise<{ certRemoved: boolean; keyDeleted: boolean }> {
    const certRemoved = await removeNodeCert(this.dir);
    this.#held = undefined;
    let keyDeleted = false;
    if (banned && this.#deleteKeyOnBan && this.#key !== undefined) {
      keyDeleted = await deleteNodeKey(this.dir);
      this.#key = undefined;
    }
    return { certRemoved, keyDeleted };
  }

  /** Release the directory lock (the files stay). */
  async close(): Promise<void> {
    await this.#lock.release();
  }
}
