import { EXIT, type CommandIo } from './command.js';
import { DEFAULT_KBS_URL } from './kbs-admin-client.js';

/** Flags every command that calls the KBS admin API takes (spread into a command's parseArgs options). */
export const ADMIN_OPTIONS = {
  url: { type: 'string' },
  'admin-token-file': { type: 'string' },
  json: { type: 'boolean', default: false },
  help: { type: 'boolean', short: 'h' },
} as const;

interface Parsed {
  values: { help?: boolean | undefined; url?: string | undefined };
  positionals: string[];
}

/**
 * Run a command's `parseArgs` and handle what every admin command does alike: a parse failure is a
 * usage error on stderr, `--help` prints the usage, the KBS URL comes from --url, KEYHOLD_KBS_URL or
 * the default. Returns the exit code when the command should stop here.
 */
export function parseAdminCommand<P extends Parsed>(
  name: string,
  usageText: string,
  io: CommandIo,
  parse: () => P,
): (P & { url: string; usage(msg: string): number }) | number {
  const usage = (msg: string): number => {
    io.stderr.write(`keyhold ${name}: ${msg}\n${usageText}\n`);
    return EXIT.USAGE;
  };
  let parsed: P;
  try {
    parsed = parse();
  } catch (err) {
    return usage((err as Error).message);
  }
  if (parsed.values.help === true) {
    io.stderr.write(`${usageText}\n`);
    return EXIT.OK;
  }
  return { ...parsed, url: parsed.values.url ?? process.env['KEYHOLD_KBS_URL'] ?? DEFAULT_KBS_URL, usage };
}
