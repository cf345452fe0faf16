import { createHash, timingSafeEqual } from 'node:crypto';
import { CvmError, type CvmErrorCode } from '../errors.js';

/**
 * Check that a (verified) hardware report's report_data starts with SHA-256 of the HCL variable
 * data, so everything in the variable data — the vTPM AK above all — is vouched for by the CPU.
 *
 * @throws CvmError `code` (HCL_VAR_DATA_MISMATCH for SNP, TDX_REPORT_DATA_MISMATCH for a TD quote).
 */
export function checkVariableDataBinding(variableData: Uint8Array, hardwareReportData: Uint8Array, code: CvmErrorCode): void {
  const digest = createHash('sha256').update(variableData).digest();
  // SECURITY: without this binding the AK in the variable data is just a key the host (or anyone)
  // chose; the CPU-signed report_data is what ties the vTPM to the confidential VM (Trustee
  // verify_report_data / verify_hcl_var_data; azure-cvm-tooling hcl::verify_report_data).
  if (hardwareReportData.byteLength < 32 || !timingSafeEqual(digest, hardwareReportData.subarray(0, 32))) {
    throw new CvmError(code, 'SHA-256 of the HCL variable data differs from the hardware report_data');
  }
}

/**
 * Check v2 evidence's HCL `user-data`: it must start with the expected report data (Trustee
 * `verify_user_data`: the report was requested fresh with the runtime-data digest).
 *
 * @throws CvmError `HCL_USER_DATA_MISMATCH`.
 */
export function checkUserDataBinding(userData: Uint8Array | undefined, expectedReportData: Uint8Array): void {
  // SECURITY: v2 evidence promises an HCL report made for this session; a report without user-data,
  // or with another session's, is a replayed or pre-made report (Trustee PR #1487, evidence v2).
  if (userData === undefined || expectedReportData.byteLength > userData.byteLength) {
    throw new CvmError('HCL_USER_DATA_MISMATCH', 'HCL variable data carries no user-data for the report data');
  }
  // SECURITY: (as above) the prefix must be exactly this session's runtime-data digest, compared in constant time.
  if (!timingSafeEqual(userData.subarray(0, expectedReportData.byteLength), expectedReportData)) {
    throw new CvmError('HCL_USER_DATA_MISMATCH', 'HCL user-data does not match the expected report data');
  }
}
