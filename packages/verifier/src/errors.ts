/**
 * Typed errors of the verifier's TPM quote and evidence appraisal. Every rejection of hostile input
 * is a `VerifierError` whose `code` is stable (the KBS maps codes to HTTP statuses in one table).
 * Messages name the failing structure, field and offset only; they never embed evidence bytes,
 * keys, nonces or PCR values.
 *
 * Event-log and IMA errors have their own class (`eventlog/errors.ts`).
 */
export type VerifierErrorCode =
  // --- Binary TPM structures (TPMS_ATTEST, TPMT_SIGNATURE, TPML_PCR_SELECTION, tpm2-tools files)
  /** A structure runs past the end of its bytes. */
  | 'TPM_TRUNCATED'
  /** Bytes remain after a structure that must fill its buffer exactly. */
  | 'TPM_TRAILING_BYTES'
  /** A size or count field exceeds its limit (checked before anything is allocated). */
  | 'TPM_LENGTH_EXCEEDED'
  /** A field holds a value the structure does not allow. */
  | 'TPM_MALFORMED'
  /** An algorithm (hash, signature scheme, key type, curve) this verifier does not accept. */
  | 'TPM_UNSUPPORTED_ALGORITHM'
  // --- Quote verification
  /** TPMS_ATTEST.magic is not TPM_GENERATED_VALUE. */
  | 'QUOTE_BAD_MAGIC'
  /** TPMS_ATTEST.type is not TPM_ST_ATTEST_QUOTE. */
  | 'QUOTE_WRONG_TYPE'
  /** The AK public key is not a usable DER SubjectPublicKeyInfo. */
  | 'QUOTE_INVALID_AK'
  /** The signature scheme does not fit the AK's key type. */
  | 'QUOTE_SCHEME_MISMATCH'
  /** The signature does not verify with the AK. */
  | 'QUOTE_SIGNATURE_INVALID'
  /** TPMS_ATTEST.extraData differs from the expected nonce / report data. */
  | 'QUOTE_EXTRA_DATA_MISMATCH'
  /** The quoted PCR selection differs from the PCR values supplied. */
  | 'QUOTE_PCR_SELECTION_MISMATCH'
  /** A supplied PCR value has the wrong length for its bank. */
  | 'QUOTE_PCR_VALUE_LENGTH'
  /** The digest of the supplied PCR values differs from the quoted pcrDigest. */
  | 'QUOTE_PCR_DIGEST_MISMATCH'
  // --- Trustee `tpm` evidence appraisal
  /** The evidence JSON does not have the expected shape or encoding. */
  | 'EVIDENCE_MALFORMED'
  /** The AK is not in the owner's trusted AK list (or the list is empty). */
  | 'EVIDENCE_AK_NOT_TRUSTED'
  /** PCR8 does not hold the init-data digest extended as Trustee extends it. */
  | 'EVIDENCE_INIT_DATA_MISMATCH'
  // --- TPM-resident tee key (TPM2_Certify by the quote's AK)
  /** The certification's TPMS_ATTEST.magic is not TPM_GENERATED_VALUE. */
  | 'CERTIFY_BAD_MAGIC'
  /** The certification's TPMS_ATTEST.type is not TPM_ST_ATTEST_CERTIFY. */
  | 'CERTIFY_WRONG_TYPE'
  /** The certification's signature does not verify with the AK that signed the quote. */
  | 'CERTIFY_SIGNATURE_INVALID'
  /** The certification's extraData differs from the expected runtime-data digest. */
  | 'CERTIFY_EXTRA_DATA_MISMATCH'
  /** The certified name is not the name of the TPM2B_PUBLIC sent beside it. */
  | 'CERTIFY_NAME_MISMATCH'
  /** The certified key's attributes or parameters do not make a TPM-resident decryption-only key. */
  | 'TEE_KEY_ATTRIBUTES_INVALID'
  /** The key's authPolicy is not the PolicyPCR digest of the quoted PCR values it claims to be sealed to. */
  | 'TEE_KEY_POLICY_MISMATCH'
  /** The tee-pubkey JWK of the runtime data is not the certified key. */
  | 'TEE_KEY_JWK_MISMATCH';

export class VerifierError extends Error {
  override readonly name: string = 'VerifierError';
  readonly code: VerifierErrorCode;

  constructor(code: VerifierErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
  }
}
