import { tpmInitDataDigest } from '@keyhold/protocol';
import {
  appraiseAzSnpVtpmEvidence,
  appraiseAzTdxVtpmEvidence,
  type AzSnpVtpmAppraisal,
  type AzTdxVtpmAppraisal,
  type CvmTee,
  type SnpTrustAnchors,
  type TdxCollateral,
  type TdxTcbStatus,
  type TdxTrustAnchors,
} from '@keyhold/verifier/cvm';
import { KbsError } from '../../errors.js';
import { AR4SI, type TrustworthinessVector } from '../../token/ear-claims.js';
import type { TeeAppraisal, TeeAppraisalInput, TeeAppraiser } from '../tee-appraiser.js';
import type { TpmExtension } from '../tpm/tpm-extension.js';
import { worseVector } from './vector.js';

export interface AzVtpmAppraiserOptions {
  readonly tee: CvmTee;
  /** AMD roots (az-snp-vtpm). */
  readonly snpTrustAnchors?: SnpTrustAnchors;
  /** Intel roots (az-tdx-vtpm). */
  readonly tdxTrustAnchors?: TdxTrustAnchors;
  /** Intel TCB collateral (az-tdx-vtpm); without it the TCB status is `unknown`. */
  readonly tdxCollateral?: readonly TdxCollateral[];
  /**
   * The TPM steps that run on the vTPM quote once it verified (measured boot, IMA). Identity
   * extensions (EK credential activation) are not for vTPMs: the hardware report vouches for the AK.
   */
  readonly extensions?: readonly TpmExtension[];
}

/** AR4SI `hardware` for a TDX TCB status: only Intel's UpToDate affirms; unknown claims nothing. */
function tdxHardware(status: TdxTcbStatus): number {
  if (status === 'UpToDate') return AR4SI.GENUINE_HARDWARE;
  if (status === 'unknown') return AR4SI.NO_CLAIM;
  if (status === 'Revoked') return AR4SI.CONTRAINDICATED;
  return AR4SI.WARNING;
}

/**
 * Appraises Trustee's `az-snp-vtpm` / `az-tdx-vtpm` evidence: the pure verifier checks the vTPM
 * quote with the AK the hardware report vouches for, the runtime-data binding, init-data in PCR8,
 * and the CPU vendor's chain (AMD VCEK → ASK → ARK; Intel PCK chain, QE, quote); then the KBS's TPM
 * steps (event log, IMA) run on the verified quote, as for `tpm` evidence.
 *
 * AR4SI claims: `instance-identity` 2 (the AK is bound to the CVM's hardware report); `hardware`
 * 2 for a verified AMD chain or an Intel TCB status of UpToDate, 32 for other Intel statuses, 96 for
 * Revoked, none (0) when the TDX TCB status is unknown; `runtime-opaque` 2, or 96 when the guest
 * policy / TD attributes allow debugging. Refusals are 401 AttestationFailed whose detail starts
 * with the verifier's code.
 */
export class AzVtpmAppraiser implements TeeAppraiser {
  readonly tee: CvmTee;
  readonly #opts: AzVtpmAppraiserOptions;

  constructor(opts: AzVtpmAppraiserOptions) {
    if (opts.tee !== 'az-snp-vtpm' && opts.tee !== 'az-tdx-vtpm') throw new TypeError('tee must be az-snp-vtpm or az-tdx-vtpm');
    if (opts.tee === 'az-snp-vtpm' && opts.snpTrustAnchors === undefined) throw new TypeError('az-snp-vtpm needs AMD trust anchors');
    if (opts.tee === 'az-tdx-vtpm' && opts.tdxTrustAnchors === undefined) throw new TypeError('az-tdx-vtpm needs Intel trust anchors');
    this.tee = opts.tee;
    this.#opts = opts;
  }

  async appraise(input: TeeAppraisalInput): Promise<TeeAppraisal> {
    const base = {
      // The full runtime-data digest: Azure attesters quote it unshortened (TPM2B_DATA holds 64 bytes).
      expectedReportData: input.expectedReportData,
      ...(input.initDataDigest !== undefined ? { initDataDigest: tpmInitDataDigest(input.initDataDigest) } : {}),
      now: input.now,
    };
    let verified: AzSnpVtpmAppraisal | AzTdxVtpmAppraisal;
    const vector: Partial<TrustworthinessVector> = { 'instance-identity': AR4SI.TRUSTED_INSTANCE };
    try {
      if (this.tee === 'az-snp-vtpm') {
        verified = appraiseAzSnpVtpmEvidence(input.evidence, { ...base, trustAnchors: this.#opts.snpTrustAnchors as SnpTrustAnchors });
        vector.hardware = AR4SI.GENUINE_HARDWARE;
      } else {
        verified = appraiseAzTdxVtpmEvidence(input.evidence, {
          ...base,
          trustAnchors: this.#opts.tdxTrustAnchors as TdxTrustAnchors,
          ...(this.#opts.tdxCollateral !== undefined ? { collateral: this.#opts.tdxCollateral } : {}),
        });
        vector.hardware = tdxHardware(verified.tcb.status);
      }
    } catch (err) {
      throw asAttestationFailure(err);
    }
    // SECURITY: a guest whose memory the host may read (SNP policy DEBUG, TD attributes DEBUG) keeps
    // no secret from the host; the token says so and the default release policy refuses it.
    vector['runtime-opaque'] = verified.debugAllowed ? AR4SI.CONTRAINDICATED : AR4SI.AFFIRMING;

    const teeClaims: Record<string, unknown> = { ...verified.claims };
    const extra: Record<string, unknown> = {};
    const evidence = input.evidence as Record<string, unknown>;
    for (const ext of this.#opts.extensions ?? []) {
      if (ext.establishesIdentity === true) continue;
      let r;
      try {
        r = await ext.appraise({
          verified: verified.tpm,
          evidence,
          session: input.session,
          challengeState: undefined,
          references: input.references,
          now: input.now,
          initDataBound: input.initDataDigest !== undefined,
        });
      } catch (err) {
        throw asAttestationFailure(err);
      }
      worseVector(vector, r.vector ?? {});
      Object.assign(teeClaims, r.claims ?? {});
      Object.assign(extra, r.extra ?? {});
    }
    return {
      teeClaims,
      reportDataHex: verified.claims['report_data'] as string,
      initDataHex: verified.claims['init_data'] as string,
      vector,
      ...(Object.keys(extra).length > 0 ? { extra } : {}),
    };
  }
}

function asAttestationFailure(err: unknown): KbsError {
  if (err instanceof KbsError) return err;
  const code = (err as { code?: unknown }).code;
  const msg = err instanceof Error ? err.message : 'invalid evidence';
  return new KbsError('ATTESTATION_FAILED', typeof code === 'string' ? `${code}: ${msg}` : msg, { cause: err });
}
