import type { TpmAppraisal } from '../../tpm/evidence/appraise.js';
import { CvmError } from '../errors.js';
import { decodeUnverifiedCvmEvidence } from '../evidence/decode.js';
import { decodeUnverifiedHclReport } from '../hcl/decode.js';
import { decodeUnverifiedHclVariableData } from '../hcl/variable-data.js';
import { checkUserDataBinding, checkVariableDataBinding } from '../hcl/verify-binding.js';
import { requireReportData, vtpmClaims, requireInitDataDigest, type CvmClaims } from '../claims.js';
import { appraiseVtpmQuote } from '../vtpm-quote.js';
import { decodeUnverifiedSnpReport, type UnverifiedSnpReport } from './report.js';
import type { SnpTrustAnchors } from './trust-anchors.js';
import { decodeUnverifiedVcek } from './vcek.js';
import { verifySnpReport, type SnpReportCheck } from './verify-report.js';
import { verifyVcekChain, type VerifiedVcekChain } from './verify-vcek.js';

export interface AppraiseAzSnpVtpmOptions {
  /** The runtime-data digest the vTPM quote's extraData must equal (1..64 bytes; the full digest). */
  readonly expectedReportData: Uint8Array;
  /** 32-byte init-data digest; when present PCR8 must equal sha256(0x00*32 ‖ digest). */
  readonly initDataDigest?: Uint8Array;
  /** AMD ARK/ASK chains (`builtinSnpTrustAnchors()` or the owner's, via `createSnpTrustAnchors`). */
  readonly trustAnchors: SnpTrustAnchors;
  readonly now: Date;
}

export interface AzSnpVtpmAppraisal {
  readonly tee: 'az-snp-vtpm';
  readonly evidenceVersion: 0 | 1 | 2;
  /** Trustee-shaped claims plus Keyhold's (`snp`, `hcl`), for `annotated-evidence.az-snp-vtpm`. */
  readonly claims: CvmClaims;
  /** The vTPM quote's appraisal (its AK is the HCL report's `HCLAkPub`). */
  readonly tpm: TpmAppraisal;
  /** The AMD chain the VCEK belongs to (verified). */
  readonly chain: VerifiedVcekChain;
  /** True when the guest policy allows debugging (the host can read the VM's memory). */
  readonly debugAllowed: boolean;
}

const bit = (v: bigint, n: number): boolean => ((v >> BigInt(n)) & 1n) === 1n;
const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');
const u64hex = (v: bigint): string => v.toString(16).padStart(16, '0');

function snpClaims(report: UnverifiedSnpReport, check: SnpReportCheck, chain: VerifiedVcekChain, vcekProduct: string): Record<string, unknown> {
  const p = report.policy;
  const tcb = check.reportedTcb;
  return {
    // Trustee's names and string values (deps/verifier/src/az_snp_vtpm parse_tee_evidence_az).
    policy_abi_major: String(Number((p >> 8n) & 0xffn)),
    policy_abi_minor: String(Number(p & 0xffn)),
    policy_smt_allowed: String(bit(p, 16)),
    policy_migrate_ma: String(bit(p, 18)),
    policy_debug_allowed: String(bit(p, 19)),
    policy_single_socket: String(bit(p, 20)),
    reported_tcb_bootloader: String(tcb.bootloader),
    reported_tcb_tee: String(tcb.tee),
    reported_tcb_snp: String(tcb.snp),
    reported_tcb_microcode: String(tcb.microcode),
    platform_tsme_enabled: String(bit(report.platformInfo, 1)),
    platform_smt_enabled: String(bit(report.platformInfo, 0)),
    measurement: Buffer.from(report.measurement).toString('base64'),
    // Keyhold's: the rest of the report, hex.
    snp: {
      report_version: report.version,
      generation: chain.generation,
      vcek_product: vcekProduct,
      ark_sha256: chain.arkFingerprint,
      guest_svn: report.guestSvn,
      policy: u64hex(report.policy),
      family_id: hex(report.familyId),
      image_id: hex(report.imageId),
      vmpl: report.vmpl,
      platform_info: u64hex(report.platformInfo),
      measurement: hex(report.measurement),
      host_data: hex(report.hostData),
      id_key_digest: hex(report.idKeyDigest),
      author_key_digest: hex(report.authorKeyDigest),
      report_id: hex(report.reportId),
      report_id_ma: hex(report.reportIdMa),
      report_data: hex(report.reportData),
      chip_id: hex(report.chipId),
      chip_id_compared: check.chipIdCompared,
      current_tcb: u64hex(report.currentTcbRaw),
      reported_tcb: u64hex(report.reportedTcbRaw),
      committed_tcb: u64hex(report.committedTcbRaw),
      launch_tcb: u64hex(report.launchTcbRaw),
      ...(tcb.fmc !== undefined ? { reported_tcb_fmc: tcb.fmc } : {}),
      current_version: report.currentVersion,
      committed_version: report.committedVersion,
      ...(report.version >= 3 ? { cpuid: { ...report.cpuid } } : {}),
    },
  };
}

/**
 * Appraise Trustee `az-snp-vtpm` primary evidence (already JSON-parsed; v0, v1 or v2). Guarantees,
 * when it returns:
 *  1. the evidence has one of Trustee's shapes; the HCL report is well formed and holds an SEV-SNP report;
 *  2. the vTPM quote verifies with the HCL report's `HCLAkPub` AK, its extraData equals
 *     `expectedReportData`, its PCR digest matches the 24 SHA-256 PCRs, and PCR8 holds the
 *     init-data binding when `initDataDigest` is given (everything `appraiseTpmEvidence` guarantees);
 *  3. for v2 evidence, the HCL `user-data` starts with `expectedReportData`;
 *  4. the VCEK chains to an ASK/ARK among `trustAnchors`, all valid at `now`;
 *  5. the SNP report's signature verifies with the VCEK, its REPORTED_TCB and CHIP_ID are the VCEK's,
 *     it was signed by a VCEK at VMPL 0;
 *  6. SHA-256 of the HCL variable data (holding the AK) equals the first 32 bytes of the SNP
 *     report's REPORT_DATA — so the AK that signed the quote is the one the CPU vouched for.
 *
 * It does **not** check: AMD CRLs; the measurement, guest policy, TCB minimums or platform info
 * (reported as claims for policy); event logs or IMA (the KBS's TPM steps); the HCL header's unsigned fields.
 *
 * @throws CvmError (`CVM_*`, `HCL_*`, `SNP_*`) or VerifierError (`QUOTE_*`, `TPM_*`, `EVIDENCE_*`);
 *   TypeError for malformed options.
 */
export function appraiseAzSnpVtpmEvidence(evidence: unknown, options: AppraiseAzSnpVtpmOptions): AzSnpVtpmAppraisal {
  const expectedReportData = requireReportData(options.expectedReportData);
  const initDataDigest = requireInitDataDigest(options.initDataDigest);
  if (!(options.now instanceof Date) || Number.isNaN(options.now.getTime())) throw new TypeError('now must be a valid Date');

  const ev = decodeUnverifiedCvmEvidence('az-snp-vtpm', evidence);
  const hcl = decodeUnverifiedHclReport(ev.hclReport);
  // SECURITY: az-snp-vtpm evidence must carry an SEV-SNP report; a TDX report would be parsed with
  // the wrong layout and verified against the wrong vendor (type confusion).
  if (hcl.reportType !== 'snp') throw new CvmError('HCL_REPORT_TYPE_MISMATCH', 'az-snp-vtpm evidence carries a TDX report');
  const vars = decodeUnverifiedHclVariableData(hcl.variableData);

  const tpm = appraiseVtpmQuote(ev, vars.akSpkiDer, expectedReportData, initDataDigest);
  if (ev.version === 2) checkUserDataBinding(vars.userData, expectedReportData);

  const report = decodeUnverifiedSnpReport(hcl.hardwareReport);
  const vcek = decodeUnverifiedVcek(ev.vcekDer as Uint8Array);
  const chain = verifyVcekChain(vcek, options.trustAnchors, options.now);
  const check = verifySnpReport(report, vcek, chain.generation);
  checkVariableDataBinding(hcl.variableData, report.reportData, 'HCL_VAR_DATA_MISMATCH');

  const debugAllowed = bit(report.policy, 19);
  const claims = vtpmClaims(tpm, ev.version, vars, snpClaims(report, check, chain, vcek.productName));
  return Object.freeze({ tee: 'az-snp-vtpm', evidenceVersion: ev.version, claims, tpm, chain, debugAllowed });
}
