import { timingSafeEqual, verify as cryptoVerify } from 'node:crypto';
import { CvmError } from '../errors.js';
import { decodeSnpTcb, type SnpTcbVersion, type UnverifiedSnpReport } from './report.js';
import type { UnverifiedVcek } from './vcek.js';

/** The only VMPL Trustee accepts for the paravisor's report (HCL_VMPL_VALUE). */
export const HCL_VMPL = 0;
const SIGNING_KEY_VCEK = 0;

/** The facts `verifySnpReport` established. */
export interface SnpReportCheck {
  readonly reportedTcb: SnpTcbVersion;
  /** False when the report's CHIP_ID was masked (all zero) and could not be compared. */
  readonly chipIdCompared: boolean;
}

/**
 * Verify an SEV-SNP report with a VCEK whose chain was verified. Guarantees: the ECDSA P-384 /
 * SHA-384 signature over bytes 0x000..0x29F verifies with the VCEK; the report says it was signed
 * by a VCEK; the VCEK was derived for exactly the report's REPORTED_TCB (boot loader, TEE, SNP,
 * microcode, and FMC on Turin); the VCEK's hardware id is the report's CHIP_ID (unless the chip id
 * was masked); the report was made at VMPL 0.
 * Not checked: guest policy bits, measurement, TCB minimums (policy decides from the claims).
 *
 * @throws CvmError `SNP_SIGNATURE_INVALID`, `SNP_VCEK_MISMATCH`, `SNP_VMPL_INVALID`.
 */
export function verifySnpReport(report: UnverifiedSnpReport, vcek: UnverifiedVcek, generation: string): SnpReportCheck {
  let ok = false;
  try {
    ok = cryptoVerify('sha384', report.signedBytes, { key: vcek.node.publicKey, dsaEncoding: 'ieee-p1363' }, report.signatureP1363);
  } catch {
    ok = false;
  }
  // SECURITY: only the chip's VCEK (held by the AMD secure processor) can sign a report; any
  // changed byte of the signed part is refused (ABI spec, ATTESTATION_REPORT.SIGNATURE).
  if (!ok) throw new CvmError('SNP_SIGNATURE_INVALID', 'SNP report signature does not verify with the VCEK');
  const signingKey = (report.flags >> 2) & 0x7;
  // SECURITY: a report that says another key (VLEK) signed it must not be accepted as VCEK-signed.
  if (signingKey !== SIGNING_KEY_VCEK) throw new CvmError('SNP_VCEK_MISMATCH', `SNP report was signed by key type ${signingKey}, not a VCEK`);
  const reportedTcb = decodeSnpTcb(report.reportedTcbRaw, generation.toLowerCase().startsWith('turin'));
  for (const part of ['bootloader', 'tee', 'snp', 'microcode', 'fmc'] as const) {
    // SECURITY: a VCEK is derived per TCB version; a report whose TCB differs from the VCEK's was
    // made on other firmware than the VCEK vouches for (Trustee: "SNP version mismatch").
    if (reportedTcb[part] !== vcek.tcb[part]) throw new CvmError('SNP_VCEK_MISMATCH', `SNP report ${part} TCB differs from the VCEK's`);
  }
  const masked = report.chipId.every((b) => b === 0);
  if (!masked) {
    const expected = report.chipId.subarray(0, vcek.hwId.length);
    // SECURITY: the VCEK names one chip; a report from another chip is not vouched for by it.
    if (!timingSafeEqual(expected, vcek.hwId)) throw new CvmError('SNP_VCEK_MISMATCH', 'SNP report CHIP_ID differs from the VCEK hardware id');
  }
  // SECURITY: the HCL report must come from the paravisor at VMPL 0; a report requested from a
  // less privileged level (the guest OS) could carry report_data of the guest's choosing (Trustee).
  if (report.vmpl !== HCL_VMPL) throw new CvmError('SNP_VMPL_INVALID', `SNP report VMPL is ${report.vmpl}, not ${HCL_VMPL}`);
  return { reportedTcb, chipIdCompared: !masked };
}
