/**
 * Hardware identity for the KBS handshake (issue 3), with no extra round trip:
 *  - `/auth` Request extra-params name the TPM: `{"tpm-identity": {"ek_tpm2b_public", "ek_cert"?, "ak_tpm2b_public"}}`
 *    (standard base64 of the EK's and AK's TPM2B_PUBLIC and of the EK certificate's DER from NV);
 *  - when the Challenge's extra-params carry `{"tpm-credential": {"credential_blob", "encrypted_secret"}}`
 *    (TPM2_MakeCredential output for this EK and AK name), the TPM recovers the secret with
 *    TPM2_ActivateCredential (PolicySecret(endorsement) session, inside the device) and the
 *    evidence carries it as `activated_credential` beside Trustee's fields, with the identity
 *    fields repeated.
 * The EK is created from a TCG template (L-1 RSA 2048 / L-2 ECC P-256 / high-range H-3 ECC P-384,
 * whose PolicyOR session the device builds) on first use,
 * unless the caller passes one already loaded (e.g. the AK's parent), and flushed by close().
 * With an {@link EkPublicCache}, naming the EK needs no EK in the TPM when the TPM's qualified name
 * of the AK proves the cached EK is its parent; credential activation still loads the real EK. With
 * an {@link EkCertificateCache}, the EK certificate is read from NV at most once a day while the kept
 * copy is a valid certificate of that EK.
 */
import { EK_CERT_NV_INDEX, type TpmDevice, type TpmKey } from '../tpm/device.js';
import { TpmError } from '../errors.js';
import { KbsClientError } from '../kbs-client/errors.js';
import { ekAlgOfPublic, type EkAlg } from '../tpm/templates.js';
import type { TpmEvidenceContributor } from './tpm-attester.js';
import type { EkCertificateCache } from './ek-certificate-cache.js';
import type { EkPublicCache } from './ek-public-cache.js';

export const IDENTITY_PARAM = 'tpm-identity';
export const CREDENTIAL_PARAM = 'tpm-credential';
export const ACTIVATED_CREDENTIAL_FIELD = 'activated_credential';

/** TPM2B_ID_OBJECT and TPM2B_ENCRYPTED_SECRET sizes are bounded by the TPM (MAX_DIGEST / RSA 4096). */
const MAX_CREDENTIAL_BLOB_BYTES = 2 + 2 + 64 + 2 + 64;
const MAX_ENCRYPTED_SECRET_BYTES = 2 + 512;

export interface IdentityContributorOptions {
  readonly tpm: TpmDevice;
  readonly ak: TpmKey;
  /** EK template to name (default `rsa`). */
  readonly ekAlg?: EkAlg;
  /** An EK of `ekAlg` already loaded in `tpm` (not flushed by close()). */
  readonly ek?: TpmKey;
  /** NV index of the EK certificate (default: the TCG index for `ekAlg`). */
  readonly ekCertIndex?: number;
  /** EK public areas kept between runs (used only when the TPM vouches for them, see EkPublicCache). */
  readonly ekPublicCache?: EkPublicCache;
  /** EK certificates kept between runs (used only for that EK, valid and fresh, see EkCertificateCache). */
  readonly ekCertificateCache?: EkCertificateCache;
}

interface IdentityWire {
  ek_tpm2b_public: string;
  ek_cert?: string;
  ak_tpm2b_public: string;
}

const b64 = (b: Uint8Array): string => Buffer.from(b).toString('base64');

function challengeBytes(v: unknown, field: string, max: number): Uint8Array {
  // SECURITY: a hostile or confused KBS must not make the agent allocate or send arbitrary data to
  // the TPM: shape, canonical base64 and size are checked first (the TSS unmarshal checks again).
  if (typeof v !== 'string' || v.length > Math.ceil(max / 3) * 4) throw new KbsClientError('KBS_PROTOCOL', `challenge ${CREDENTIAL_PARAM}.${field} is malformed`);
  const bytes = Buffer.from(v, 'base64');
  if (bytes.toString('base64') !== v || bytes.length < 2) throw new KbsClientError('KBS_PROTOCOL', `challenge ${CREDENTIAL_PARAM}.${field} is malformed`);
  return new Uint8Array(bytes);
}

export class IdentityContributor implements TpmEvidenceContributor {
  readonly name = 'hardware-identity';
  readonly #o: IdentityContributorOptions;
  readonly #ekAlg: EkAlg;
  #ek: TpmKey | undefined;
  #ownEk = false;
  #wire: IdentityWire | undefined;

  constructor(opts: IdentityContributorOptions) {
    this.#o = opts;
    this.#ekAlg = opts.ekAlg ?? 'rsa';
    if (opts.ek !== undefined && ekAlgOfPublic(opts.ek.publicArea) !== this.#ekAlg) throw new TypeError('ek must be of ekAlg');
    this.#ek = opts.ek;
  }

  async #loadEk(): Promise<TpmKey> {
    if (this.#ek === undefined) {
      this.#ek = await this.#o.tpm.createEk(this.#ekAlg);
      this.#ownEk = true;
    }
    return this.#ek;
  }

  /** The identity named to the KBS (computed once per contributor). */
  async identity(): Promise<IdentityWire> {
    if (this.#wire !== undefined) return this.#wire;
    const ekPublic = await this.#ekPublic();
    const certCache = this.#o.ekCertificateCache;
    let cert = await certCache?.lookup(this.#ekAlg, ekPublic);
    if (cert === undefined) {
      try {
        cert = await this.#o.tpm.readNv(this.#o.ekCertIndex ?? EK_CERT_NV_INDEX[this.#ekAlg]);
        await certCache?.remember(this.#ekAlg, ekPublic, cert);
      } catch (err) {
        // No certificate in NV is normal (many vTPMs); the owner's allowlist can still vouch for the EK.
        if (!(err instanceof TpmError && err.code === 'TPM_NV_NOT_FOUND')) throw err;
      }
    }
    this.#wire = {
      ek_tpm2b_public: b64(ekPublic),
      ...(cert !== undefined && cert.length > 0 ? { ek_cert: b64(cert) } : {}),
      ak_tpm2b_public: b64(this.#o.ak.publicArea),
    };
    return this.#wire;
  }

  /** The EK's public area: from the cache when the TPM vouches for it, else from the EK (then cached). */
  async #ekPublic(): Promise<Uint8Array> {
    const cache = this.#o.ekPublicCache;
    if (this.#ek === undefined && cache !== undefined) {
      const cached = await cache.lookup(this.#ekAlg, this.#o.ak);
      if (cached !== undefined) return cached;
    }
    const ek = await this.#loadEk();
    await cache?.remember(this.#ekAlg, ek, this.#o.ak);
    return ek.publicArea;
  }

  async requestExtraParams(): Promise<Record<string, unknown>> {
    return { [IDENTITY_PARAM]: await this.identity() };
  }

  async evidenceFields(challengeExtra: Record<string, unknown>): Promise<Record<string, unknown>> {
    const out: Record<string, unknown> = { ...(await this.identity()) };
    const cred = challengeExtra[CREDENTIAL_PARAM];
    if (cred === undefined) return out;
    if (cred === null || typeof cred !== 'object') throw new KbsClientError('KBS_PROTOCOL', `challenge ${CREDENTIAL_PARAM} is malformed`);
    const { credential_blob: blob, encrypted_secret: secret } = cred as Record<string, unknown>;
    const credentialBlob = challengeBytes(blob, 'credential_blob', MAX_CREDENTIAL_BLOB_BYTES);
    const encryptedSecret = challengeBytes(secret, 'encrypted_secret', MAX_ENCRYPTED_SECRET_BYTES);
    const ek = await this.#loadEk();
    const recovered = await this.#o.tpm.activateCredential(this.#o.ak, ek, credentialBlob, encryptedSecret);
    out[ACTIVATED_CREDENTIAL_FIELD] = b64(recovered);
    return out;
  }

  /** Flush the EK if this contributor created it. */
  async close(): Promise<void> {
    const ek = this.#ek;
    if (ek !== undefined && this.#ownEk) {
      this.#ek = undefined;
      this.#ownEk = false;
      await this.#o.tpm.flushKey(ek);
    }
  }
}

/**
 * The contributor for a node session: reuses the AK's parent EK when it was made from the EK template
 * asked for, otherwise names the EK from `ekPublicCache` when the TPM vouches for it.
 */
export function identityContributorFor(
  tpm: TpmDevice,
  ak: { ak: TpmKey; ek: TpmKey | undefined },
  ekAlg: EkAlg,
  ekPublicCache?: EkPublicCache,
  ekCertificateCache?: EkCertificateCache,
): IdentityContributor {
  const reuse = ak.ek !== undefined && ekAlgOfPublic(ak.ek.publicArea) === ekAlg;
  return new IdentityContributor({
    tpm,
    ak: ak.ak,
    ekAlg,
    ...(reuse ? { ek: ak.ek } : {}),
    ...(ekPublicCache !== undefined ? { ekPublicCache } : {}),
    ...(ekCertificateCache !== undefined ? { ekCertificateCache } : {}),
  });
}
