// Confidential-VM vTPM evidence (Trustee `az-snp-vtpm` / `az-tdx-vtpm`) — issue 17.
export { CvmError, type CvmErrorCode } from './errors.js';
export { CVM_TEES, decodeUnverifiedCvmEvidence, type CvmTee, type UnverifiedCvmEvidence } from './evidence/decode.js';
export { decodeUnverifiedHclReport, MAX_HCL_REPORT_BYTES, type HclReportType, type UnverifiedHclReport } from './hcl/decode.js';
export { decodeUnverifiedHclVariableData, HCL_AK_KEY_ID, HCL_USER_DATA_BYTES, type UnverifiedHclVariableData } from './hcl/variable-data.js';
export { isVerifiedCvmClaims, type CvmClaims } from './claims.js';
// AMD SEV-SNP
export { appraiseAzSnpVtpmEvidence, type AppraiseAzSnpVtpmOptions, type AzSnpVtpmAppraisal } from './snp/appraise.js';
export { decodeUnverifiedSnpReport, decodeSnpTcb, type UnverifiedSnpReport, type SnpTcbVersion } from './snp/report.js';
export { decodeUnverifiedVcek, type UnverifiedVcek } from './snp/vcek.js';
export { verifyVcekChain, type VerifiedVcekChain } from './snp/verify-vcek.js';
export { verifySnpReport, type SnpReportCheck } from './snp/verify-report.js';
export { createSnpTrustAnchors, builtinSnpTrustAnchors, pemCertificates, type SnpTrustAnchors, type AmdSigningChain } from './snp/trust-anchors.js';
export { AMD_SEV_ROOTS, AMD_SEV_ROOT_FINGERPRINTS, type AmdSevRootCertificates } from './snp/amd-roots.js';
// Intel TDX
export { appraiseAzTdxVtpmEvidence, type AppraiseAzTdxVtpmOptions, type AzTdxVtpmAppraisal } from './tdx/appraise.js';
export { decodeUnverifiedTdQuote, type UnverifiedTdQuote, type TdQuoteBody, type SgxReportBody } from './tdx/quote.js';
export { verifyTdQuote, TD_QE_IDENTITY, type VerifiedTdQuoteChain } from './tdx/verify-quote.js';
export { parseTdxCollateral, evaluateTdxTcb, TDX_TCB_STATUSES, type TdxCollateral, type TdxTcbStatus, type TdxTcbEvaluation } from './tdx/collateral.js';
export { createTdxTrustAnchors, builtinTdxTrustAnchors, type TdxTrustAnchors } from './tdx/trust-anchors.js';
export { INTEL_SGX_ROOT_CA_PEM, INTEL_SGX_ROOT_CA_FINGERPRINT } from './tdx/intel-root.js';
