/**
 * TPM-resident tee keys (issue 14): the secret is wrapped to a key that the TPM created under its
 * storage root key, that can never leave it (fixedTPM, fixedParent, sensitiveDataOrigin), and that
 * the AK certifies (TPM2_Certify) with the same qualifying data as the quote. Unwrapping runs the
 * private-key step in the TPM (TPM2_RSA_Decrypt / TPM2_ECDH_ZGen) and the rest in software.
 * Optionally the key is sealed: its authPolicy is TPM2_PolicyPCR over the current values of chosen
 * SHA-256 PCRs, so it stops working once any of them changes.
 *
 * Evidence member (beside Trustee's `tpm` fields, ignored by a Trustee KBS), `tee_key`:
 *   { "tpm2b_public": b64 TPM2B_PUBLIC, "certify_info": b64 TPMS_ATTEST, "signature": b64 TPMT_SIGNATURE,
 *     "sealed_pcrs": [SHA-256 PCR indices] (only for sealed keys) }
 */
import { checkTeeKeyAttributes, policyPcrDigest, tpmPublicToKeyObject } from '@keyhold/verifier/tpm-keys';
import type { ResourceResponse, TeePubkey } from '@keyhold/protocol';
import { TpmError } from '../errors.js';
import type { PcrPolicy, SrkChildBlob, TpmDevice, TpmKey } from '../tpm/device.js';
import { decodePublicArea } from '../tpm/public-area.js';
import { teeKeyTemplate, type KeyAlg } from '../tpm/templates.js';
import { decryptFlattenedJwe, type JweKeyAgreement } from './jwe-decrypt.js';
import type { TeeKey, TeeKeySource } from './tee-key.js';

/** The evidence member that carries the certification. */
export const TEE_KEY_EVIDENCE_FIELD = 'tee_key';
const PCR_BANK = 'sha256';
const PCR_COUNT = 24;

/** A TPM tee key as it can be kept on disk (the private blob is wrapped by this TPM's SRK). */
export interface StoredTpmTeeKey {
  readonly blob: SrkChildBlob;
  /** SHA-256 PCR indices its authPolicy covers; empty when unsealed. */
  readonly sealedPcrs: readonly number[];
}

export interface TpmTeeKeyOptions {
  readonly tpm: TpmDevice;
  /** The AK that certifies the key (the one that signs the quotes). */
  readonly ak: TpmKey;
  readonly alg: KeyAlg;
  /** Seal to the current values of these SHA-256 PCRs (PolicyPCR); unsealed when absent or empty. */
  readonly sealToPcrs?: readonly number[];
}

const b64 = (b: Uint8Array): string => Buffer.from(b).toString('base64');

/** Checks a PCR list: distinct indices 0..23, returned ascending. */
export function sealedPcrList(indices: readonly number[]): number[] {
  const set = new Set(indices);
  if (set.size !== indices.length || indices.some((i) => !Number.isInteger(i) || i < 0 || i >= PCR_COUNT)) {
    throw new TypeError('sealed PCRs must be distinct indices 0..23');
  }
  return [...set].sort((a, b) => a - b);
}

/** A tee key whose private half is in the TPM. */
export class TpmTeeKey implements TeeKey {
  readonly publicJwk: TeePubkey;
  readonly stored: StoredTpmTeeKey;
  readonly #tpm: TpmDevice;
  readonly #ak: TpmKey;
  readonly #agreement: JweKeyAgreement;

  constructor(tpm: TpmDevice, ak: TpmKey, stored: StoredTpmTeeKey) {
    const pub = decodePublicArea(stored.blob.publicArea);
    const sealedPcrs = sealedPcrList(stored.sealedPcrs);
    try {
      // The same rules the KBS applies: a blob that is not a decryption-only, TPM-bound key is not used.
      checkTeeKeyAttributes(pub, { sealed: sealedPcrs.length > 0 });
    } catch (cause) {
      throw new TpmError('TPM_BAD_RESPONSE', `not a tee key: ${(cause as Error).message}`, { cause });
    }
    this.#tpm = tpm;
    this.#ak = ak;
    this.stored = { blob: stored.blob, sealedPcrs };
    const policy: PcrPolicy | undefined = sealedPcrs.length > 0 ? { bank: PCR_BANK, indices: sealedPcrs } : undefined;
    const jwk = tpmPublicToKeyObject(pub).export({ format: 'jwk' });
    if (pub.type === 'rsa') {
      this.publicJwk = { kty: 'RSA', alg: 'RSA-OAEP-256', n: jwk.n!, e: jwk.e! };
      this.#agreement = { kind: 'rsa-oaep-256', modulusBytes: pub.unique.length, decryptKey: (c) => tpm.rsaDecrypt(stored.blob, c, policy) };
    } else {
      const crv = jwk.crv === 'P-384' ? 'P-384' : 'P-256';
      this.publicJwk = { kty: 'EC', crv, alg: 'ECDH-ES+A256KW', x: jwk.x!, y: jwk.y! };
      this.#agreement = { kind: 'ecdh-es', crv, sharedSecret: (epk) => tpm.ecdhZGen(stored.blob, epk, policy) };
    }
  }

  decrypt(jwe: ResourceResponse): Promise<Uint8Array> {
    return decryptFlattenedJwe(jwe, this.#agreement);
  }

  /** TPM2_Certify of this key by the AK, over `reportData` (the quote's qualifying data). */
  async residencyEvidence(reportData: Uint8Array): Promise<Record<string, unknown>> {
    const c = await this.#tpm.certify(this.stored.blob, this.#ak, reportData);
    return {
      [TEE_KEY_EVIDENCE_FIELD]: {
        tpm2b_public: b64(this.stored.blob.publicArea),
        certify_info: b64(c.certifyInfo),
        signature: b64(c.signature),
        ...(this.stored.sealedPcrs.length > 0 ? { sealed_pcrs: [...this.stored.sealedPcrs] } : {}),
      },
    };
  }
}

/** Creates a fresh TPM tee key per attestation (RSA-2048 OAEP or ECC P-256), optionally sealed. */
export class TpmTeeKeySource implements TeeKeySource {
  readonly #o: TpmTeeKeyOptions;
  readonly #sealed: readonly number[];

  constructor(opts: TpmTeeKeyOptions) {
    this.#o = opts;
    this.#sealed = sealedPcrList(opts.sealToPcrs ?? []);
  }

  async create(): Promise<TpmTeeKey> {
    let authPolicy: Uint8Array | undefined;
    if (this.#sealed.length > 0) {
      const values = await this.#o.tpm.readPcrs(PCR_BANK, this.#sealed);
      authPolicy = policyPcrDigest({ hashAlg: 'sha256', bank: PCR_BANK, values: new Map(this.#sealed.map((i, k) => [i, values[k]!])) });
    }
    const blob = await this.#o.tpm.createUnderSrk(teeKeyTemplate(this.#o.alg, authPolicy !== undefined ? { authPolicy } : {}));
    return new TpmTeeKey(this.#o.tpm, this.#o.ak, { blob, sealedPcrs: this.#sealed });
  }

  /** A key created earlier (e.g. kept with a cached JWE); it only loads in the TPM that made it. */
  restore(stored: StoredTpmTeeKey): TpmTeeKey {
    return new TpmTeeKey(this.#o.tpm, this.#o.ak, stored);
  }
}
