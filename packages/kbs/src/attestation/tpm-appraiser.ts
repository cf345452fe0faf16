import { fitReportData, tpmInitDataDigest, TPM_REPORT_DATA_BYTES } from '@keyhold/protocol';
import { appraiseTpmEvidence, type AkTrust } from '@keyhold/verifier';
import { KbsError } from '../errors.js';
import { AR4SI } from '../token/ear-claims.js';
import type { TeeAppraisal, TeeAppraisalInput, TeeAppraiser } from './tee-appraiser.js';

/** Reference value holding the owner's trusted AKs (standard base64 DER SPKI), as in Trustee. */
export const TRUSTED_AK_REFERENCE = 'trusted_ak';

export interface TpmAppraiserOptions {
  /** Accept AKs listed in the `trusted_ak` reference value (Trustee compatible). */
  trustedAkList: boolean;
}

/** Appraises Trustee `tpm` evidence with the pure verifier; AK trust from the owner's list. */
export class TpmAppraiser implements TeeAppraiser {
  readonly tee = 'tpm';
  readonly #opts: TpmAppraiserOptions;

  constructor(opts: TpmAppraiserOptions) {
    this.#opts = opts;
  }

  async appraise(input: TeeAppraisalInput): Promise<TeeAppraisal> {
    // SECURITY: with no way to trust the AK configured, nothing attests (fail closed).
    if (!this.#opts.trustedAkList) throw new KbsError('ATTESTATION_FAILED', 'no AK trust source is enabled for tee tpm');
    const listed = input.references.get(TRUSTED_AK_REFERENCE) ?? [];
    const akTrust: AkTrust = { mode: 'trusted-list', trustedAkSpkiDer: listed.map((b64) => new Uint8Array(Buffer.from(b64, 'base64'))) };
    let result;
    try {
      result = appraiseTpmEvidence(input.evidence, {
        expectedReportData: fitReportData(input.expectedReportData, TPM_REPORT_DATA_BYTES),
        akTrust,
        ...(input.initDataDigest !== undefined ? { initDataDigest: tpmInitDataDigest(input.initDataDigest) } : {}),
      });
    } catch (err) {
      const code = (err as { code?: unknown }).code;
      const msg = err instanceof Error ? err.message : 'invalid evidence';
      throw new KbsError('ATTESTATION_FAILED', typeof code === 'string' ? `${code}: ${msg}` : msg, { cause: err });
    }
    // SECURITY: belt and braces — only an AK the owner listed counts as identity (fail closed).
    if (result.akTrusted !== 'listed') throw new KbsError('ATTESTATION_FAILED', 'AK is not trusted');
    const { claims } = result;
    const teeClaims: Record<string, unknown> = { ...claims };
    return {
      teeClaims,
      reportDataHex: claims.report_data,
      initDataHex: claims.init_data,
      vector: { 'instance-identity': AR4SI.TRUSTED_INSTANCE },
    };
  }
}
