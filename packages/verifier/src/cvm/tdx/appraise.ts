import type { TpmAppraisal } from '../../tpm/evidence/appraise.js';
import { CvmError } from '../errors.js';
import { requireInitDataDigest, requireReportData, vtpmClaims, type CvmClaims } from '../claims.js';
import { decodeUnverifiedCvmEvidence } from '../evidence/decode.js';
import { decodeUnverifiedHclReport } from '../hcl/decode.js';
import { decodeUnverifiedHclVariableData } from '../hcl/variable-data.js';
import { checkUserDataBinding, checkVariableDataBinding } from '../hcl/verify-binding.js';
import { appraiseVtpmQuote } from '../vtpm-quote.js';
import { evaluateTdxTcb, type TdxCollateral, type TdxTcbEvaluation } from './collateral.js';
import { decodeUnverifiedTdQuote, type UnverifiedTdQuote } from './quote.js';
import type { TdxTrustAnchors } from './trust-anchors.js';
import { verifyTdQuote, type VerifiedTdQuoteChain } from './verify-quote.js';

export interface AppraiseAzTdxVtpmOptions {
  /** The runtime-data digest the vTPM quote's extraData must equal (1..64 bytes; the full digest). */
  readonly expectedReportData: Uint8Array;
  /** 32-byte init-data digest; when present PCR8 must equal sha256(0x00*32 ‖ digest). */
  readonly initDataDigest?: Uint8Array;
  /** Intel roots (`builtinTdxTrustAnchors()` or the owner's, via `createTdxTrustAnchors`). */
  readonly trustAnchors: TdxTrustAnchors;
  /** Intel TCB collateral (`parseTdxCollateral`); without it the TCB status is `unknown`. */
  readonly collateral?: readonly TdxCollateral[];
  readonly now: Date;
}

export interface AzTdxVtpmAppraisal {
  readonly tee: 'az-tdx-vtpm';
  readonly evidenceVersion: 0 | 1 | 2;
  readonly claims: CvmClaims;
  readonly tpm: TpmAppraisal;
  readonly tcb: TdxTcbEvaluation;
  /** True when TDATTRIBUTES.DEBUG is set (the host can inspect the TD). */
  readonly debugAllowed: boolean;
}

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');

function tdxClaims(q: UnverifiedTdQuote, chain: VerifiedTdQuoteChain, tcb: TdxTcbEvaluation): Record<string, unknown> {
  const b = q.body;
  const attrs = b.tdAttributes;
  return {
    // Trustee's TDX claim layout (deps/verifier/src/tdx/claims.rs), hex strings.
    quote: {
      header: {
        version: hex(Uint8Array.of(q.header.version & 0xff, q.header.version >> 8)),
        att_key_type: hex(Uint8Array.of(q.header.attKeyType & 0xff, q.header.attKeyType >> 8)),
        tee_type: hex(Uint8Array.of(q.header.teeType & 0xff, 0, 0, 0)),
        vendor_id: hex(q.header.qeVendorId),
        user_data: hex(q.header.userData),
      },
      body: {
        tcb_svn: hex(b.teeTcbSvn),
        mr_seam: hex(b.mrSeam),
        mrsigner_seam: hex(b.mrSignerSeam),
        seam_attributes: hex(b.seamAttributes),
        td_attributes: hex(b.tdAttributes),
        xfam: hex(b.xfam),
        mr_td: hex(b.mrTd),
        mr_config_id: hex(b.mrConfigId),
        mr_owner: hex(b.mrOwner),
        mr_owner_config: hex(b.mrOwnerConfig),
        rtmr_0: hex(b.rtmrs[0] as Uint8Array),
        rtmr_1: hex(b.rtmrs[1] as Uint8Array),
        rtmr_2: hex(b.rtmrs[2] as Uint8Array),
        rtmr_3: hex(b.rtmrs[3] as Uint8Array),
        report_data: hex(b.reportData),
      },
    },
    td_attributes: {
      debug: ((attrs[0] ?? 0) & 0x01) !== 0,
      septve_disable: ((attrs[3] ?? 0) & 0x10) !== 0,
      protection_keys: ((attrs[3] ?? 0) & 0x40) !== 0,
      key_locker: ((attrs[3] ?? 0) & 0x80) !== 0,
      perfmon: ((attrs[7] ?? 0) & 0x80) !== 0,
    },
    tcb_status: tcb.status,
    tdx: {
      fmspc: chain.platform.fmspc,
      pce_id: chain.platform.pceId,
      pce_svn: chain.platform.pceSvn,
      sgx_tcb_components: [...chain.platform.sgxTcbComponents],
      qe_isv_svn: q.qeReport.isvSvn,
      tcb: { ...tcb },
    },
  };
}

/**
 * Appraise Trustee `az-tdx-vtpm` primary evidence (already JSON-parsed; v0, v1 or v2). Guarantees,
 * when it returns:
 *  1. the evidence has one of Trustee's shapes; the HCL report is well formed and holds a TDX report;
 *  2. the vTPM quote verifies with the HCL report's `HCLAkPub` AK, with extraData =
 *     `expectedReportData`, the PCR digest, and PCR8 = init-data binding when given;
 *  3. for v2 evidence, the HCL `user-data` starts with `expectedReportData`;
 *  4. everything `verifyTdQuote` guarantees (PCK chain to a configured Intel root, QE report signed by
 *     the PCK key and from Intel's TD QE, attestation key bound by the QE, quote signature);
 *  5. SHA-256 of the HCL variable data (holding the AK) equals the first 32 bytes of the TD quote's
 *     REPORTDATA;
 *  6. with collateral, the TCB status is Intel's (signed, current) verdict for this platform; without
 *     it, `tcb_status` is `unknown`.
 *
 * It does **not** check: the TDREPORT inside the HCL report (the quote is what is signed; Trustee
 * does the same), PCK CRLs, the TDX module identity, measurements (policy decides from the claims).
 *
 * @throws CvmError (`CVM_*`, `HCL_*`, `TDX_*`) or VerifierError (`QUOTE_*`, `TPM_*`, `EVIDENCE_*`);
 *   TypeError for malformed options.
 */
export function appraiseAzTdxVtpmEvidence(evidence: unknown, options: AppraiseAzTdxVtpmOptions): AzTdxVtpmAppraisal {
  const expectedReportData = requireReportData(options.expectedReportData);
  const initDataDigest = requireInitDataDigest(options.initDataDigest);
  if (!(options.now instanceof Date) || Number.isNaN(options.now.getTime())) throw new TypeError('now must be a valid Date');

  const ev = decodeUnverifiedCvmEvidence('az-tdx-vtpm', evidence);
  const hcl = decodeUnverifiedHclReport(ev.hclReport);
  // SECURITY: az-tdx-vtpm evidence must carry a TDX report (type confusion with SEV-SNP).
  if (hcl.reportType !== 'tdx') throw new CvmError('HCL_REPORT_TYPE_MISMATCH', 'az-tdx-vtpm evidence carries an SEV-SNP report');
  const vars = decodeUnverifiedHclVariableData(hcl.variableData);

  const tpm = appraiseVtpmQuote(ev, vars.akSpkiDer, expectedReportData, initDataDigest);
  if (ev.version === 2) checkUserDataBinding(vars.userData, expectedReportData);

  const quote = decodeUnverifiedTdQuote(ev.tdQuote as Uint8Array);
  const chain = verifyTdQuote(quote, options.trustAnchors, options.now);
  checkVariableDataBinding(hcl.variableData, quote.body.reportData, 'TDX_REPORT_DATA_MISMATCH');
  const tcb = evaluateTdxTcb(options.collateral, chain.platform, quote.body.teeTcbSvn, quote.qeReport, options.trustAnchors, options.now);

  const debugAllowed = ((quote.body.tdAttributes[0] ?? 0) & 0x01) !== 0;
  const claims = vtpmClaims(tpm, ev.version, vars, tdxClaims(quote, chain, tcb));
  return Object.freeze({ tee: 'az-tdx-vtpm', evidenceVersion: ev.version, claims, tpm, tcb, debugAllowed });
}
