/**
 * Errors raised while appraising confidential-VM vTPM evidence (Azure `az-snp-vtpm` and
 * `az-tdx-vtpm`). Codes are stable: the KBS puts them at the start of its refusal detail and the
 * CLI prints them. Messages name the structure, field and offset only; they never carry evidence
 * bytes, keys or report data.
 *
 * TPM quote failures keep their own codes (`VerifierError`: `QUOTE_*`, `TPM_*`, `EVIDENCE_*`).
 */
export type CvmErrorCode =
  // --- Evidence JSON (Trustee's az-*-vtpm shapes, v0/v1/v2)
  /** The evidence JSON does not have one of Trustee's shapes, or a field is badly encoded. */
  | 'CVM_EVIDENCE_MALFORMED'
  // --- HCL report (the paravisor's report: header, hardware report, variable data)
  /** The HCL report is truncated, oversized, or its header is inconsistent. */
  | 'HCL_REPORT_MALFORMED'
  /** The HCL report carries another kind of hardware report than the evidence type needs. */
  | 'HCL_REPORT_TYPE_MISMATCH'
  /** The variable data is hashed with an algorithm Keyhold (like Trustee) does not accept. */
  | 'HCL_HASH_UNSUPPORTED'
  /** SHA-256 of the variable data differs from the hardware report's report_data. */
  | 'HCL_VAR_DATA_MISMATCH'
  /** The variable data is not the JSON Azure writes, or has no usable `HCLAkPub`. */
  | 'HCL_VAR_DATA_INVALID'
  /** The variable data's `user-data` does not carry the expected report data (v2 evidence). */
  | 'HCL_USER_DATA_MISMATCH'
  // --- AMD SEV-SNP
  /** The SNP attestation report is malformed (size, version, signature algorithm). */
  | 'SNP_REPORT_MALFORMED'
  /** The report's ECDSA P-384 signature does not verify with the VCEK. */
  | 'SNP_SIGNATURE_INVALID'
  /** The report was not produced at VMPL 0 (the paravisor's own level). */
  | 'SNP_VMPL_INVALID'
  /** The VCEK cannot be decoded, is not a P-384 key, or lacks AMD's extensions. */
  | 'SNP_VCEK_MALFORMED'
  /** The VCEK does not chain to an ASK/ARK among the trust anchors. */
  | 'SNP_VCEK_UNTRUSTED'
  /** A certificate on the VCEK path is outside its validity period. */
  | 'SNP_CERT_EXPIRED'
  /** The VCEK's TCB or hardware id differs from the report's. */
  | 'SNP_VCEK_MISMATCH'
  /** No AMD trust anchors were configured. */
  | 'SNP_NO_TRUST_ANCHORS'
  // --- Intel TDX
  /** The TD quote is malformed (version, key type, TEE type, lengths, certification data). */
  | 'TDX_QUOTE_MALFORMED'
  /** The quote's ECDSA signature does not verify with its attestation key. */
  | 'TDX_QUOTE_SIGNATURE_INVALID'
  /** The QE report's signature does not verify with the PCK certificate. */
  | 'TDX_QE_REPORT_SIGNATURE_INVALID'
  /** The QE report does not bind the attestation key and QE authentication data. */
  | 'TDX_QE_BINDING_INVALID'
  /** The PCK certificate chain is malformed or does not reach a trusted Intel root. */
  | 'TDX_PCK_UNTRUSTED'
  /** A certificate on the PCK or TCB-signing path is outside its validity period. */
  | 'TDX_CERT_EXPIRED'
  /** The TD report's report_data does not bind the HCL variable data. */
  | 'TDX_REPORT_DATA_MISMATCH'
  /** No Intel trust anchor was configured. */
  | 'TDX_NO_TRUST_ANCHORS'
  /** The owner's TCB collateral is malformed, unsigned, stale or for another platform. */
  | 'TDX_COLLATERAL_INVALID';

export class CvmError extends Error {
  override readonly name = 'CvmError';
  readonly code: CvmErrorCode;

  constructor(code: CvmErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
  }
}
