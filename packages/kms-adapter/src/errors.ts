/**
 * Stable codes for every failure the KMS adapters report. The KBS owns the table that maps each code
 * to an HTTP status (KMS_NOT_FOUND → 404, KMS_UNAVAILABLE → 503, KMS_TOO_LARGE → 413, ...).
 *
 * - KMS_NOT_FOUND: no such resource, or no such version (never existed or pruned).
 * - KMS_UNAVAILABLE: the backend is down, unreachable, sealed or timed out. The outcome of a write
 *   that fails this way is unknown (it was applied atomically or not at all).
 * - KMS_INVALID_NAME: the name is not a `repo/type/tag` resource path (includes path traversal).
 * - KMS_INVALID_ARGUMENT: a bad version number, label, key length, rotation period or keep count.
 * - KMS_TOO_LARGE: the value is larger than the store's limit.
 * - KMS_CONFLICT: a compare-and-set precondition failed (`ifVersion`), the resource is not a generated
 *   key (rotate), or writers contended beyond the retry bound.
 * - KMS_CORRUPT: a stored record failed authentication or decryption, or is malformed
 *   (tampering, a swapped record, or the wrong master key).
 * - KMS_CONFIG: the backend's configuration is unusable (e.g. a master key file of the wrong size or
 *   readable by other users, Vault credentials rejected).
 * - KMS_BACKEND_ERROR: the backend answered in a way the adapter does not understand.
 */
export type KmsErrorCode =
  | 'KMS_NOT_FOUND'
  | 'KMS_UNAVAILABLE'
  | 'KMS_INVALID_NAME'
  | 'KMS_INVALID_ARGUMENT'
  | 'KMS_TOO_LARGE'
  | 'KMS_CONFLICT'
  | 'KMS_CORRUPT'
  | 'KMS_CONFIG'
  | 'KMS_BACKEND_ERROR';

/**
 * The one error class the adapters throw for failures a caller can act on. Messages name the
 * resource path at most; they never contain secret values, keys, tokens or backend credentials.
 */
export class KmsError extends Error {
  override readonly name = 'KmsError';
  readonly code: KmsErrorCode;
  constructor(code: KmsErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
  }
}

export function isKmsError(err: unknown, code?: KmsErrorCode): err is KmsError {
  return err instanceof KmsError && (code === undefined || err.code === code);
}
