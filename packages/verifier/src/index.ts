// --- TPM quotes and Trustee `tpm` evidence (errors, parsers, verification, appraisal)
export { VerifierError } from './errors.js';
export type { VerifierErrorCode } from './errors.js';
export { decodeUnverifiedAttest, TPM_GENERATED_VALUE, TPM_ST_ATTEST_QUOTE, TPM_ST_ATTEST_CERTIFY } from './tpm/attest.js';
export type { UnverifiedAttest, UnverifiedAttestHeader, UnverifiedClockInfo } from './tpm/attest.js';
export { decodeUnverifiedSignature } from './tpm/signature.js';
export type { UnverifiedSignature } from './tpm/signature.js';
export { pcrSelectBitmapToIndices, pcrIndicesToSelectBitmap } from './tpm/pcr-selection.js';
export type { PcrSelection } from './tpm/pcr-selection.js';
export { isPcrBank, pcrBankAlgId, pcrBankByAlgId, pcrBankDigestBytes } from './tpm/pcr-bank.js';
export type { PcrBank, QuoteHashAlgorithm } from './tpm/pcr-bank.js';
export { decodeUnverifiedTpm2ToolsPcrFile } from './tpm/pcr-file.js';
export type { Tpm2ToolsPcrBank } from './tpm/pcr-file.js';
export { verifyQuote, isVerifiedQuote } from './tpm/quote/verify.js';
export type { VerifyQuoteInput, VerifiedQuote, QuotedPcrValues } from './tpm/quote/verify.js';
export { decodeUnverifiedTpmEvidence } from './tpm/evidence/decode.js';
export type { UnverifiedTpmEvidence, TpmEvidenceFields } from './tpm/evidence/decode.js';
export { appraiseTpmEvidence, isVerifiedTpmClaims } from './tpm/evidence/appraise.js';
export type { AkTrust, AppraiseTpmEvidenceOptions, TpmAppraisal, VerifiedTpmClaims } from './tpm/evidence/appraise.js';
// Measured boot (TCG PC Client event log) and IMA — issue 4.
export { EventLogError, type EventLogErrorCode } from './eventlog/errors.js';
export { EVENTLOG_BANKS, isEventLogBank, type EventLogBank } from './eventlog/algorithms.js';
export { eventTypeName } from './eventlog/event-types.js';
export { parseEventLog, forEachDigestHex, MAX_PCR_INDEX, type EventLog, type RawEvent, type EventDigest, type SpecIdHeader, type ParseEventLogOptions } from './eventlog/parse.js';
export { replayEventLog, initialPcrValue, type BankReplay, type ReplayOptions } from './eventlog/replay.js';
export { decodeUnverifiedEvents, decodeEvent, preferredBank, type DecodedEvent, type EventDetails } from './eventlog/decode.js';
export { formatGuid, type EfiSignature } from './eventlog/efi-variable.js';
export {
  decodeUnverifiedUefiVariable,
  decodeUnverifiedImageLoad,
  decodeUnverifiedFirmwareBlob,
  decodeUnverifiedGptEvent,
  decodeUnverifiedLoadOption,
  decodeUnverifiedSignatureLists,
  decodeUnverifiedStartupLocality,
  type UnverifiedUefiVariable,
  type UnverifiedImageLoad,
  type UnverifiedFirmwareBlob,
  type UnverifiedGptEvent,
  type UnverifiedLoadOption,
  type UnverifiedSignatureList,
} from './eventlog/event-data.js';
export { verifyEventLogAgainstQuote, DEFAULT_LOG_PCRS, type VerifiedEventLog, type QuotedPcrs, type VerifyEventLogOptions } from './eventlog/verify.js';
export { parseMeasuredBootReferenceState, type MeasuredBootReferenceState } from './measured-boot/reference-state.js';
export { appraiseMeasuredBoot, type MeasuredBootAppraisal, type MeasuredBootFailure, type MeasuredBootCategory } from './measured-boot/appraise.js';
export { createMeasuredBootReferenceState, type CreateReferenceStateOptions } from './measured-boot/create.js';
export { parseImaLog, type ImaEntry, type ImaTemplateName, type ParseImaLogOptions } from './ima/parse.js';
export { replayIma, imaExtendValue, type ImaCheckpoint, type ReplayImaOptions } from './ima/replay.js';
export { verifyImaAgainstQuote, type VerifiedImaLog, type VerifyImaOptions } from './ima/verify.js';
export { parseRuntimePolicy, convertLegacyAllowlist, emptyRuntimePolicy, type RuntimePolicy, type CompiledRuntimePolicy } from './ima/runtime-policy.js';
export { appraiseIma, type ImaAppraisal, type ImaFailure, type AppraiseImaOptions } from './ima/appraise.js';
export { createRuntimePolicyFromImaLog } from './ima/create-policy.js';
// Hardware identity: TPM public areas, names, AK attributes, MakeCredential, EK certificates — issue 3.
export { IdentityError, type IdentityErrorCode } from './identity/errors.js';
export { parseTpm2bPublic, parseTpmtPublic } from './tpm/public.js';
export type { TpmPublic, TpmRsaPublic, TpmEccPublic, TpmObjectAttributes, TpmSymDefObject, TpmScheme, TpmRsaSchemeName, TpmEccSchemeName, TpmKdfSchemeName, TpmHashName, TpmEccCurve } from './tpm/public.js';
export { computeName, nameOfPublic } from './tpm/name.js';
export { tpmPublicToSpkiDer, tpmPublicToKeyObject, canonicalSpkiDer, ekHash } from './identity/spki.js';
export { checkAkAttributes } from './identity/ak-attributes.js';
export { makeCredential, type MakeCredentialResult } from './identity/make-credential.js';
export { verifyEkCertificate, decodeUnverifiedEkCertificate, stripEkCertPadding, MAX_EK_CERT_BYTES } from './identity/ek-certificate.js';
export type { VerifyEkCertificateInput, VerifiedEkCertificate, UnverifiedEkCertificate } from './identity/ek-certificate.js';
export { decodeCaCertificates, MAX_CA_FILE_BYTES, type X509Certificate } from './identity/ca-certificates.js';
// TPM-resident tee keys: TPM2_Certify by the quote's AK, PolicyPCR sealing — issue 14.
export { decodeUnverifiedCertifyAttest } from './tpm/certify/decode.js';
export type { UnverifiedCertifyAttest } from './tpm/certify/decode.js';
export { verifyTeeKeyCertification, isVerifiedTeeKey } from './tpm/certify/verify.js';
export type { VerifyTeeKeyCertificationInput, VerifiedTeeKey } from './tpm/certify/verify.js';
export { checkTeeKeyAttributes } from './tpm/certify/tee-key-attributes.js';
export { policyPcrDigest, pcrSelectionWire, TPM_CC_POLICY_PCR } from './tpm/policy-pcr.js';
export type { PolicyPcrInput, PolicyHashAlgorithm } from './tpm/policy-pcr.js';
