/** Stable codes for audit format failures. */
export type AuditFormatErrorCode =
  /** A record or line is not a well-formed audit record. */
  | 'AUDIT_RECORD_INVALID'
  /** The log text is larger than a reader accepts. */
  | 'AUDIT_LOG_TOO_LARGE';

export class AuditFormatError extends Error {
  override readonly name = 'AuditFormatError';
  readonly code: AuditFormatErrorCode;
  constructor(code: AuditFormatErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
  }
}
