/** Failures of the state backend. `*_UNAVAILABLE` codes answer 503 (see app.ts `isStorageUnavailable`). */
export type StateErrorCode =
  /** The backend did not answer within the operation timeout, or refused (outage). */
  | 'STATE_UNAVAILABLE'
  /** Stored data failed its schema or integrity check: fail closed, never guess. */
  | 'STATE_CORRUPT'
  /** A compare-and-swap lost too many times in a row (pathological contention). */
  | 'STATE_CONFLICT'
  /** Another process holds the embedded data dir's lock. */
  | 'STATE_LOCKED';

export class StateError extends Error {
  override readonly name = 'StateError';
  readonly code: StateErrorCode;
  /** For STATE_LOCKED: the pid of the process holding the data dir's lock. */
  readonly holderPid: number | undefined;
  constructor(code: StateErrorCode, message: string, options?: { cause?: unknown; holderPid?: number }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.holderPid = options?.holderPid;
  }
}
