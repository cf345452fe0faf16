/** Stable codes for the atomic-file primitives. */
export type AtomicFileErrorCode =
  /** Another live process holds the directory's lock file (`holderPid` names it). */
  | 'DIR_LOCKED'
  /** The lock file exists but cannot be read as a lock (damage or a foreign file): remove it by hand. */
  | 'DIR_LOCK_INVALID';

export class AtomicFileError extends Error {
  override readonly name = 'AtomicFileError';
  readonly code: AtomicFileErrorCode;
  /** For DIR_LOCKED: the pid written in the lock file by its holder. */
  readonly holderPid: number | undefined;
  /** For DIR_LOCKED: the host name written in the lock file by its holder. */
  readonly holderHost: string | undefined;

  constructor(code: AtomicFileErrorCode, message: string, options: { cause?: unknown; holderPid?: number; holderHost?: string } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.holderPid = options.holderPid;
    this.holderHost = options.holderHost;
  }
}
