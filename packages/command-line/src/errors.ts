import { EXIT, type ExitCode } from './exit-codes.js';

/**
 * An error a command reports to its user: one line (`message`), an optional `hint` saying what to
 * do about it, a stable `code` (shown with `--json`) and the exit code. Messages never carry keys,
 * tokens or secret values.
 */
export class CliError extends Error {
  override readonly name: string = 'CliError';
  readonly code: string;
  readonly exitCode: ExitCode;
  readonly hint: string | undefined;
  constructor(code: string, message: string, options: { exitCode?: ExitCode; hint?: string; cause?: unknown } = {}) {
    super(message, options.cause !== undefined ? { cause: options.cause } : undefined);
    this.code = code;
    this.exitCode = options.exitCode ?? EXIT.FAIL;
    this.hint = options.hint;
  }
}

/** The command line itself is wrong (exit 2): a flag, an argument, a URL without a scheme. */
export class UsageError extends CliError {
  override readonly name: string = 'UsageError';
  constructor(message: string, options: { hint?: string; cause?: unknown } = {}) {
    super('USAGE', message, { ...options, exitCode: EXIT.USAGE });
  }
}
