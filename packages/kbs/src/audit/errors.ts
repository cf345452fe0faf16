/** Stable codes for audit trail failures (the KBS maps AUDIT_SINK_FAILED to 503). */
export type AuditErrorCode =
  /** The audit storage could not be written or read; the log refuses further records. */
  | 'AUDIT_SINK_FAILED'
  /** The stored log is damaged beyond a torn last line (e.g. an unparsable last record). */
  | 'AUDIT_LOG_CORRUPT';

export class AuditError extends Error {
  override readonly name = 'AuditError';
  readonly code: AuditErrorCode;
  constructor(code: AuditErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
  }
}
