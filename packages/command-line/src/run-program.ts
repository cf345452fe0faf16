import type { Command } from 'commander';
import { CliError, UsageError } from './errors.js';
import { EXIT } from './exit-codes.js';
import { describeFileError } from './file-errors.js';
import { jsonRequested, writeError, type CliIo } from './reporting.js';

export { jsonRequested, writeError, type CliIo } from './reporting.js';

/** Handed to a program's builder: the streams, and how an action reports its exit code. */
export interface ProgramContext {
  readonly io: CliIo;
  /**
   * Wrap an action handler: the number it resolves to becomes the process's exit code (0 when it
   * resolves to nothing); what it throws is reported by {@link runProgram}.
   */
  action<A extends unknown[]>(fn: (...args: A) => Promise<number | void> | number | void): (...args: A) => Promise<void>;
}

export interface RunProgramOptions {
  /** Turn an error the program's own code throws into what the user reads (undefined: generic rendering). */
  describeError?: (err: unknown) => CliError | undefined | Promise<CliError | undefined>;
}

/** `keyhold config set-resource` for the command `set-resource` under `config` under `keyhold`. */
export function commandPath(cmd: Command): string {
  const names: string[] = [];
  for (let c: Command | null = cmd; c !== null; c = c.parent) names.unshift(c.name());
  return names.join(' ');
}

function configureTree(cmd: Command, io: CliIo, onError: (text: string, cmd: Command) => void): void {
  cmd.exitOverride();
  cmd.showSuggestionAfterError(true);
  cmd.configureOutput({
    writeOut: (s) => io.stdout.write(s),
    writeErr: (s) => io.stderr.write(s),
    // Commander's own usage errors are rendered by runProgram (plain or JSON, with the command path).
    outputError: (s) => onError(s, cmd),
  });
  for (const sub of cmd.commands) configureTree(sub, io, onError);
}

/**
 * Run a commander program with the conventions all three Keyhold binaries share:
 * - `--help` (and `help CMD`) on stdout, exit 0; a missing command word shows the help on stderr, exit 2;
 * - usage errors (unknown command or flag — with commander's "Did you mean ...?" — a missing or
 *   invalid argument, a thrown {@link UsageError}) exit 2 on stderr;
 * - other errors: one line `<command path>: <message>` (+ `hint:`), exit code from the
 *   {@link CliError} (1 by default); file-system errors name the file;
 * - with `--json`, every error is one JSON line `{"error":{"code","message","hint"?,"exit"}}` on stderr.
 * The program is built per run (`build`), so nothing leaks between runs in one process (tests).
 */
export async function runProgram(build: (ctx: ProgramContext) => Command, argv: readonly string[], io: CliIo, options: RunProgramOptions = {}): Promise<number> {
  let exitCode: number = EXIT.OK;
  let active: Command | undefined;
  const ctx: ProgramContext = {
    io,
    action(fn) {
      return async (...args) => {
        const last = args[args.length - 1];
        if (last !== null && typeof last === 'object' && typeof (last as Command).name === 'function' && 'commands' in last) active = last as Command;
        const r = await fn(...args);
        exitCode = typeof r === 'number' ? r : EXIT.OK;
      };
    },
  };
  const program = build(ctx);
  let usage: { text: string; cmd: Command } | undefined;
  configureTree(program, io, (text, cmd) => {
    usage = { text, cmd };
  });
  const json = jsonRequested(argv);
  try {
    await program.parseAsync([...argv], { from: 'user' });
    return exitCode;
  } catch (err) {
    const code = (err as { code?: unknown }).code;
    if (typeof code === 'string' && code.startsWith('commander.')) {
      if (code === 'commander.helpDisplayed' || code === 'commander.version') return EXIT.OK;
      // `help CMD` printed the help on stdout (exit 0); a command group run without its command
      // word printed it on stderr (commander's exit 1, a usage error here).
      if (code === 'commander.help') return (err as { exitCode?: number }).exitCode === 0 ? EXIT.OK : EXIT.USAGE;
      const cmd = usage?.cmd ?? program;
      const [first = '', ...more] = (usage?.text ?? (err as Error).message).replace(/^error: /, '').trim().split('\n');
      // Commander's "(Did you mean --tcti?)" becomes the start of the hint.
      const suggestion = more.join(' ').trim().replace(/^\((.*)\)$/, '$1').replace(/^Did you/, 'did you');
      writeError(io, commandPath(cmd), new UsageError(first, { hint: `${suggestion !== '' ? `${suggestion} ` : ''}see '${commandPath(cmd)} --help'` }), json);
      return EXIT.USAGE;
    }
    const described = (await options.describeError?.(err)) ?? (err instanceof CliError ? err : undefined) ?? describeFileError(err) ?? new CliError('INTERNAL', `internal error: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
    writeError(io, commandPath(active ?? program), described, json);
    return described.exitCode;
  }
}
