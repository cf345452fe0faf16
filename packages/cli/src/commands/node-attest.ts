import { parseResourcePath } from '@keyhold/protocol';
import { EXIT, type CommandIo } from '../command.js';

const USAGE = `Usage (kbs-client compatible, run on the node; the TPM flags are keyhold-agent's):
  keyhold attest [--url URL] [-T TCTI] [--init-data FILE] [--json] [agent options]
      Attest with the node's TPM and print the attestation token (EAR) on stdout.
  keyhold get-resource --path REPO/TYPE/TAG [--url URL] [-T TCTI] [-o FILE] [--json] [agent options]
      Attest and fetch one secret (decrypted locally with the ephemeral tee key).
Both run the attestation agent library ('keyhold-agent token' / 'keyhold-agent get-resource');
see 'keyhold-agent --help' for --ak-mode, --ak-handle, --state-dir, --tee-key, --timeout-ms.
Exit status: 0 ok, 1 failure (refused, unreachable, TPM error), 2 usage error.`;

/**
 * `keyhold attest` and `keyhold get-resource`: kbs-client's node-side verbs, run through the agent
 * library so there is one implementation of evidence collection and the KBS handshake.
 */
export function commandFor(verb: 'attest' | 'get-resource'): { run(argv: string[], io: CommandIo): Promise<number> } {
  return {
    async run(argv, io) {
      if (argv.includes('--help') || argv.includes('-h')) {
        io.stderr.write(`${USAGE}\n`);
        return EXIT.OK;
      }
      let agentArgv: string[];
      if (verb === 'attest') {
        agentArgv = ['token', ...argv];
      } else {
        const i = argv.findIndex((a) => a === '--path' || a.startsWith('--path='));
        const arg = argv[i];
        const value = arg === undefined ? undefined : arg.startsWith('--path=') ? arg.slice('--path='.length) : argv[i + 1];
        if (i < 0 || value === undefined) {
          io.stderr.write(`keyhold get-resource: --path is required\n${USAGE}\n`);
          return EXIT.USAGE;
        }
        try {
          parseResourcePath(value.replace(/^\/+/, ''));
        } catch (err) {
          io.stderr.write(`keyhold get-resource: ${(err as Error).message}\n`);
          return EXIT.USAGE;
        }
        const restArgs = [...argv.slice(0, i), ...argv.slice(i + (arg?.startsWith('--path=') === true ? 1 : 2))];
        agentArgv = ['get-resource', `kbs:///${value.replace(/^\/+/, '')}`, ...restArgs];
      }
      // Loaded lazily: the agent brings the TPM FFI layer, which other commands do not need.
      const { runAgentCli } = await import('@keyhold/attestation-agent');
      return runAgentCli(agentArgv, { stdout: io.stdout, stderr: io.stderr }, process.env);
    },
  };
}
