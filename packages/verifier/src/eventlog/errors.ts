/**
 * Typed errors for measured-boot event logs and IMA logs. Messages name the failing structure and
 * offsets or indices only; they never embed log contents, digests or file paths from the evidence.
 */
export type EventLogErrorCode =
  /** A structure runs past the end of the log. */
  | 'EVENTLOG_TRUNCATED'
  /** A length field exceeds its limit or the bytes left. */
  | 'EVENTLOG_LENGTH_EXCEEDED'
  /** A field holds a value the format does not allow. */
  | 'EVENTLOG_MALFORMED'
  /** The log declares a digest algorithm this verifier does not implement. */
  | 'EVENTLOG_UNSUPPORTED_ALGORITHM'
  /** An event has no digest for a bank that must be replayed. */
  | 'EVENTLOG_MISSING_DIGEST'
  /** The replayed PCR value differs from the quoted one. */
  | 'EVENTLOG_REPLAY_MISMATCH'
  /** The caller asked to verify against a bank that was not quoted or not allowed. */
  | 'EVENTLOG_BANK_NOT_ACCEPTED'
  /** An IMA measurement list line is malformed. */
  | 'IMA_MALFORMED'
  /** An IMA template hash does not match its template data. */
  | 'IMA_TEMPLATE_HASH_MISMATCH'
  /** The IMA replay does not reach the quoted PCR value. */
  | 'IMA_REPLAY_MISMATCH'
  /** A runtime policy or legacy allowlist is malformed. */
  | 'IMA_POLICY_INVALID'
  /** A measured-boot reference state is malformed. */
  | 'REFERENCE_STATE_INVALID';

export class EventLogError extends Error {
  override readonly name = 'EventLogError';
  readonly code: EventLogErrorCode;

  constructor(code: EventLogErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
  }
}
