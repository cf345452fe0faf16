/**
 * Errors raised by hardware-identity checks (TPM public areas, AK attributes, credential
 * protection, EK certificates). Codes are stable: the KBS maps them to HTTP statuses and
 * Trustee error types. Messages never carry key material, secrets or evidence bytes.
 */
export type IdentityErrorCode =
  /** A TPM2B_PUBLIC / TPMT_PUBLIC is truncated, oversized or internally inconsistent. */
  | 'TPM_PUBLIC_MALFORMED'
  /** A well-formed public area of a type, curve or algorithm Keyhold does not support. */
  | 'TPM_PUBLIC_UNSUPPORTED'
  /** The AK's attributes or key strength do not prove a TPM-resident restricted signing key. */
  | 'AK_ATTRIBUTES_INVALID'
  /** MakeCredential inputs unusable: EK not a restricted decryption key, bad name, credential too long. */
  | 'CREDENTIAL_INPUT_INVALID'
  /** An EK public key (SPKI) that cannot be decoded. */
  | 'EK_PUBLIC_INVALID'
  /** The EK certificate cannot be decoded (DER, extensions). */
  | 'EK_CERT_MALFORMED'
  /** The EK certificate does not chain to a certificate in the owner's CA store. */
  | 'EK_CERT_UNKNOWN_CA'
  /** A certificate on the path is outside its validity period at `now`. */
  | 'EK_CERT_EXPIRED'
  /** A certificate on the path carries a critical extension Keyhold does not process. */
  | 'EK_CERT_UNSUPPORTED_CRITICAL_EXTENSION'
  /** A certificate on the path is not allowed in its position (CA used as EK, non-CA as issuer). */
  | 'EK_CERT_CHAIN_INVALID'
  /** A CA store entry that is not a decodable CA certificate (PEM or DER). */
  | 'CA_CERT_INVALID'
  /** The EK certificate's public key differs from the EK public key the TPM used. */
  | 'EK_CERT_KEY_MISMATCH';

export class IdentityError extends Error {
  override readonly name = 'IdentityError';
  readonly code: IdentityErrorCode;

  constructor(code: IdentityErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
  }
}
