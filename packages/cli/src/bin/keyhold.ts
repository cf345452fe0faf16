#!/usr/bin/env node
import type { CommandIo, CommandModule } from '../command.js';

/**
 * `keyhold` — the owner and operator CLI. Each entry loads its command module lazily so that a
 * command's dependencies cost nothing to the others. Keys are the command words.
 */
const COMMANDS: Record<string, { summary: string; load: () => Promise<CommandModule> }> = {
  audit: { summary: 'read and verify the KBS audit trail (--file or --url; --verify checks the hash chain)', load: () => import('../commands/audit.js') },
  ca: { summary: 'EK CA store on a KBS: add, list', load: () => import('../commands/ca.js') },
  'ek-hash': { summary: 'hex SHA-256 of an EK public key (from a TPM, a PEM/DER key or an EK certificate)', load: () => import('../commands/ek-hash.js') },
  node: { summary: 'EK allowlist and enrolled nodes on a KBS: allow, disallow, revoke, remove, list', load: () => import('../commands/node.js') },
  'policy test': { summary: 'evaluate a CEL policy locally against a token or claims file', load: () => import('../commands/policy-test.js') },
  'token issue': { summary: 'mint an admin token (JWT) from a private key, for a role and lifetime', load: () => import('../commands/token-issue.js') },
  config: { summary: 'admin calls to a KBS: resources, policies, reference values (set-/get-/list-/delete-...)', load: () => import('../commands/config.js') },
  attest: { summary: 'on a node: attest with the TPM and print the token (runs the agent library)', load: async () => (await import('../commands/node-attest.js')).commandFor('attest') },
  'get-resource': { summary: 'on a node: attest and fetch a secret, --path REPO/TYPE/TAG (runs the agent library)', load: async () => (await import('../commands/node-attest.js')).commandFor('get-resource') },
  eventlog: { summary: 'print a TCG PC Client event log and its replayed PCRs (like tpm2_eventlog)', load: () => import('../commands/eventlog.js') },
  'image encrypt': { summary: 'encrypt an OCI image for the node key provider (KEK in the KBS) and/or jwe recipients', load: () => import('../commands/image-encrypt.js') },
  'policy create': { summary: 'generate a measured-boot reference state or a Keylime runtime policy', load: () => import('../commands/policy-create.js') },
  'verify-quote': { summary: 'verify a TPM quote (tpm2_quote output) strictly, like tpm2_checkquote', load: () => import('../commands/verify-quote.js') },
  'verify-evidence': { summary: 'verify Azure CVM vTPM evidence (az-snp-vtpm, az-tdx-vtpm) offline, as the KBS does', load: () => import('../commands/verify-evidence.js') },
};

const USAGE = (): string =>
  `Usage: keyhold <command> [options]\n\nCommands:\n${Object.entries(COMMANDS)
    .map(([k, v]) => `  ${k.padEnd(16)} ${v.summary}`)
    .join('\n')}\n\nRun 'keyhold <command> --help' for a command's options.`;

export async function main(argv: string[], io: CommandIo): Promise<number> {
  const [first, second, ...rest] = argv;
  if (first === undefined || first === '--help' || first === '-h') {
    io.stderr.write(`${USAGE()}\n`);
    return first === undefined ? 2 : 0;
  }
  if (first === '--version') {
    io.stdout.write('keyhold 0.1.0\n');
    return 0;
  }
  // Two-word commands ("policy create", "token issue") take precedence over one-word ones.
  const two = second !== undefined ? COMMANDS[`${first} ${second}`] : undefined;
  const entry = two ?? COMMANDS[first];
  if (entry === undefined) {
    io.stderr.write(`keyhold: unknown command '${first}'\n${USAGE()}\n`);
    return 2;
  }
  const args = two !== undefined ? rest : [second, ...rest].filter((a): a is string => a !== undefined);
  const mod = await entry.load();
  return mod.run(args, io);
}

main(process.argv.slice(2), { stdout: process.stdout, stderr: process.stderr, stdin: process.stdin }).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    process.stderr.write(`keyhold: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exitCode = 1;
  },
);
