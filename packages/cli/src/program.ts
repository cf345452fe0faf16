/**
 * `keyhold`: the owner and operator CLI. This module declares every command (commander); a
 * command's code and its dependencies (verifier, policy engine, OCI, the agent library) are
 * imported only when it runs.
 */
import { Command, runProgram, type CliIo, type ProgramContext } from '@keyhold/command-line';
import type { AdminClient, KbsFlags } from './kbs-admin-client.js';
import type { KeyholdRun } from './keyhold-run.js';
import { defineAdminCommands } from './program-admin.js';
import { defineLocalCommands } from './program-local.js';

export interface KeyholdOptions {
  /** The clock for token lifetimes and audit --since (tests pin it). */
  readonly now?: () => Date;
}

const GLOBALS_HELP = `
Global options may come before or after the command (keyhold --url U config ... as with kbs-client).
Environment: KEYHOLD_KBS_URL, KEYHOLD_KBS_CA, KEYHOLD_CLIENT_CERT, KEYHOLD_CLIENT_KEY, KEYHOLD_ADMIN_TOKEN_FILE.
Exit status: 0 ok, 1 failure (or a negative verdict), 2 usage error, 3 refused by the KBS (401/403),
4 not found (404). Results on stdout; messages and errors on stderr (one JSON line with --json).`;

function build(ctx: ProgramContext, run: KeyholdRun): Command {
  const program = new Command('keyhold')
    .description('Keyhold owner and operator CLI: KBS administration (kbs-client compatible), policies, tokens, TPM tools')
    .version('keyhold 0.1.0', '--version')
    .option('--url <url>', 'KBS base URL (default http://127.0.0.1:8080; env KEYHOLD_KBS_URL)')
    .option('--cert-file <file>', 'CA certificate (PEM) of an https KBS (env KEYHOLD_KBS_CA)')
    .option('--client-cert <file>', "client certificate (PEM) for a KBS whose admin API requires mutual TLS ([admin] client_ca; env KEYHOLD_CLIENT_CERT)")
    .option('--client-key <file>', 'private key (PEM) of --client-cert (env KEYHOLD_CLIENT_KEY)')
    .option('--admin-token-file <file>', "admin JWT for admin calls (env KEYHOLD_ADMIN_TOKEN_FILE; see 'keyhold token issue')")
    .option('--auth-private-key <file>', "kbs-client's way: sign a 5-minute admin token with this Ed25519/P-256 private key instead")
    .option('--json', 'results as JSON on stdout; errors as JSON on stderr')
    .addHelpText('after', GLOBALS_HELP);
  defineAdminCommands(program, ctx, run);
  defineLocalCommands(program, ctx, run);
  return program;
}

/** Run `keyhold` with `argv` (without the program name); resolves to the exit code. */
export async function runKeyhold(argv: readonly string[], io: CliIo, env: NodeJS.ProcessEnv = process.env, opts: KeyholdOptions = {}): Promise<number> {
  let program: Command | undefined;
  let admin: AdminClient | undefined;
  const run: KeyholdRun = {
    io,
    env,
    get json() {
      return program?.opts<{ json?: boolean }>().json === true;
    },
    flags: () => program?.opts<KbsFlags>() ?? {},
    async admin() {
      if (admin === undefined) {
        const { AdminClient } = await import('./kbs-admin-client.js');
        admin = new AdminClient(program?.opts<KbsFlags>() ?? {}, env);
      }
      return admin;
    },
    now: opts.now ?? (() => new Date()),
  };
  try {
    return await runProgram(
      (ctx) => {
        program = build(ctx, run);
        return program;
      },
      argv,
      io,
      { describeError: async (err) => (await import('./describe-error.js')).describeKeyholdError(err) },
    );
  } finally {
    await admin?.close();
  }
}

