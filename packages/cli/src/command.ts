import type { CliIo } from '@keyhold/command-line';

/** Where a command writes: results on stdout, messages and errors on stderr. */
export type CommandIo = CliIo;

/** A command module that parses its own arguments (eventlog, verify-quote): returns its exit code. */
export interface CommandModule {
  run(argv: string[], io: CommandIo): Promise<number>;
}

/** Exit codes shared by every command (and by keyhold-kbs and keyhold-agent): see @keyhold/command-line. */
export { EXIT } from '@keyhold/command-line';
