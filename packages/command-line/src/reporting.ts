/**
 * How a Keyhold command reports: the streams it writes to, and an error as one line (plus a hint)
 * or one JSON object. No commander here: a command's fast path (keyhold-agent get-resource through
 * the daemon's socket) reports exactly as {@link runProgram} does without loading the parser.
 */
import type { CliError } from './errors.js';

export { CliError, UsageError } from './errors.js';
export { EXIT, type ExitCode } from './exit-codes.js';

/** Where a command writes: results on stdout, messages and errors on stderr. */
export interface CliIo {
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream;
  /** Standard input, for commands that read it. */
  stdin?: NodeJS.ReadableStream;
}

/** Whether `--json` is on the command line (before a `--`): errors are then printed as JSON too. */
export function jsonRequested(argv: readonly string[]): boolean {
  const end = argv.indexOf('--');
  return (end < 0 ? argv : argv.slice(0, end)).includes('--json');
}

/** Print a reported error: one line (plus a hint line), or one JSON object when `--json` is given. */
export function writeError(io: CliIo, prefix: string, err: CliError, json: boolean): void {
  if (json) {
    io.stderr.write(`${JSON.stringify({ error: { code: err.code, message: err.message, ...(err.hint !== undefined ? { hint: err.hint } : {}), exit: err.exitCode } })}\n`);
    return;
  }
  io.stderr.write(`${prefix}: ${err.message}\n${err.hint !== undefined ? `  hint: ${err.hint}\n` : ''}`);
}

