/**
 * Errors of the KBS-side identity stores (EK allowlist, CA store, enrolment records).
 * Map to HTTP: *_UNAVAILABLE → 503 (fail closed), *_INVALID / HASH_INVALID → 400 on admin input
 * (500 at startup), NODE_REVOKED → 403.
 */
export type IdentityStoreErrorCode =
  /** A value that is not 64 lower/upper-case hex characters was used as an EK hash / node id. */
  | 'EK_HASH_INVALID'
  /** The allowlist could not be read (anything but "no such entry"): callers must deny. */
  | 'EK_ALLOWLIST_UNAVAILABLE'
  /** The CA store directory or one of its files could not be read. */
  | 'CA_STORE_UNAVAILABLE'
  /** A CA store file is not a CA certificate (PEM/DER). */
  | 'CA_STORE_INVALID'
  /** The enrolment store could not be read or written, or holds a corrupt record. */
  | 'ENROLMENT_STORE_UNAVAILABLE'
  /** An enrolment was attempted for a node the owner revoked. */
  | 'NODE_REVOKED';

export class IdentityStoreError extends Error {
  override readonly name = 'IdentityStoreError';
  readonly code: IdentityStoreErrorCode;

  constructor(code: IdentityStoreErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
  }
}
