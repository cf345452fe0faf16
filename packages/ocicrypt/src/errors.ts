/** Stable codes for everything @keyhold/ocicrypt rejects. Messages never carry key material. */
export type OcicryptErrorCode =
  // OCI image layout
  | 'OCI_LAYOUT_INVALID'
  | 'OCI_REF_NOT_FOUND'
  | 'OCI_BLOB_NOT_FOUND'
  | 'OCI_BLOB_DIGEST_MISMATCH'
  | 'OCI_BLOB_SIZE_MISMATCH'
  | 'OCI_MANIFEST_INVALID'
  | 'OCI_UNSUPPORTED_MEDIA_TYPE'
  | 'OCI_TOO_LARGE'
  | 'OCI_OUTPUT_EXISTS'
  // layer cipher
  | 'LAYER_ALREADY_ENCRYPTED'
  | 'LAYER_CIPHER_UNSUPPORTED'
  | 'LAYER_PUBOPTS_INVALID'
  | 'LAYER_OPTSDATA_INVALID'
  | 'LAYER_HMAC_MISMATCH'
  | 'LAYER_DIGEST_MISMATCH'
  // key wrapping
  | 'NO_WRAPPED_KEY'
  | 'UNWRAP_FAILED'
  | 'JWE_MALFORMED'
  | 'JWE_DECRYPT_FAILED'
  | 'PACKET_MALFORMED'
  | 'PACKET_PROVIDER_UNSUPPORTED'
  | 'PACKET_WRAP_TYPE_UNSUPPORTED'
  | 'PACKET_KEK_INVALID'
  | 'PACKET_UNWRAP_FAILED'
  // keyprovider protocol
  | 'KEYPROVIDER_MESSAGE_MALFORMED';

export class OcicryptError extends Error {
  override readonly name = 'OcicryptError';
  readonly code: OcicryptErrorCode;
  constructor(code: OcicryptErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
  }
}
