import { pino, type Logger } from 'pino';

export interface CliLoggerOptions {
  /** pino level: fatal, error, warn, info, debug, trace, silent. */
  readonly level: string;
  /** Where logs go; process.stderr by default. */
  readonly stream?: NodeJS.WritableStream;
  /** Human-readable lines (pino-pretty) instead of JSON; default: when `stream` is a terminal. */
  readonly pretty?: boolean;
}

/**
 * The logger of a long-running Keyhold process (the KBS, the agent's key provider): JSON lines
 * (pino) for log collectors, or pretty human-readable lines when a person watches a terminal.
 * pino-pretty is loaded only in that case.
 */
export async function createCliLogger(opts: CliLoggerOptions): Promise<Logger> {
  const stream = opts.stream ?? process.stderr;
  const pretty = opts.pretty ?? (stream as { isTTY?: boolean }).isTTY === true;
  if (pretty) {
    const { default: build } = await import('pino-pretty');
    return pino(
      { level: opts.level },
      build({ destination: stream, sync: true, colorize: (stream as { isTTY?: boolean }).isTTY === true, translateTime: 'SYS:HH:MM:ss.l', ignore: 'pid,hostname' }),
    );
  }
  return pino({ level: opts.level }, stream === process.stderr ? pino.destination(2) : stream);
}
