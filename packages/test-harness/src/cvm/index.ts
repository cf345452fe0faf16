// SYNTHETIC confidential-VM attestation material for tests only (issue 17): test AMD and Intel
// PKIs, SEV-SNP reports, TD quotes, HCL reports and Trustee-shaped evidence. Never a trust anchor
// outside tests.
export { createSyntheticAmdChain, DEFAULT_SYNTHETIC_TCB, type SyntheticAmdChain, type SyntheticVcek, type SyntheticTcb, type IssueVcekOptions } from './amd-chain.js';
export { buildSnpReport, type SnpReportFields } from './snp-report.js';
export { buildHclReport, hclVariableData, hclReportData, type HclReportOptions, type HclVariableDataOptions } from './hcl-report.js';
export { createSyntheticIntelPki, type SyntheticIntelPki, type SyntheticPck, type IssuePckOptions } from './intel-pki.js';
export { buildTdQuote, buildTdReport, signedTdxCollateral, type TdQuoteOptions, type TcbLevelSpec, type CollateralOptions } from './td-quote.js';
export { azVtpmEvidence, synthesizeSnpHclReport, b64urlPadded, type VtpmQuoteParts, type SnpHclOptions } from './evidence.js';
export { startSwtpmVtpm, AZURE_VTPM_AK_HANDLE, AZURE_HCL_REPORT_NV_INDEX, type SwtpmVtpm } from './swtpm-vtpm.js';
