/**
 * `keyhold-agent`: the command line of the node agent. This module only declares the commands
 * (commander); each command's code — the TPM layer, the KBS client, gRPC, OCI — is imported when
 * that command runs, so `--help`, usage errors and one command never pay for the others.
 */
import { Command, runProgram, UsageError, type CliIo, type ProgramContext } from '@keyhold/command-line';
import { addAgentOptions, commonValues } from './cli-options.js';
import type { AgentConfig } from './config.js';
import type { SecretEncoding, SessionOpener } from './node-commands.js';
import { markPhase } from './phase-channel.js';

export type AgentIo = CliIo;
export type { SessionOpener } from './node-commands.js';

export interface AgentCliOptions {
  /** Opens the TPM and the KBS client (tests pass a fake); the real one by default. */
  readonly opener?: SessionOpener;
  /**
   * `kbs-client`: run as `keyhold attest|get-resource` (kbs-client's verbs): the program is named
   * `keyhold`, and get-resource prints base64 unless --raw or -o is given, as kbs-client does.
   */
  readonly flavor?: 'agent' | 'kbs-client';
}

interface RunState {
  config?: AgentConfig;
}

function buildProgram(ctx: ProgramContext, env: NodeJS.ProcessEnv, opts: AgentCliOptions, state: RunState): Command {
  const { io } = ctx;
  const kbsClient = opts.flavor === 'kbs-client';
  const program = new Command(kbsClient ? 'keyhold' : 'keyhold-agent')
    .description('Keyhold node agent: proves the node state with its TPM to a KBS and fetches secrets')
    .version('keyhold-agent 0.1.0', '--version')
    .addHelpText('after', '\nExit status: 0 ok, 1 failure (unreachable, TPM error), 2 usage error, 3 refused by the KBS (401/403), 4 not found (404).');
  addAgentOptions(program);

  // As `keyhold attest|get-resource`, the agent's options are not shown by the command's own help.
  const agentOptionsNote = kbsClient ? "\nAgent options (--tcti, --ak-mode, --init-data, --cert-file, ...) are accepted too: see 'keyhold-agent --help'." : '';
  const config = async (cmd: Command): Promise<AgentConfig> => {
    const { agentConfigFrom } = await import('./config.js');
    state.config = agentConfigFrom(commonValues(cmd), env);
    return state.config;
  };
  const opener = async (): Promise<SessionOpener> => opts.opener ?? (await import('./node-session.js')).openNodeSession;
  const nodeCommands = () => import('./node-commands.js');

  program
    .command('get-resource')
    .description('attest and fetch a secret: kbs:///REPO/TYPE/TAG[?version=N] or REPO/TYPE/TAG (or --path)')
    .argument('[resource]', 'kbs:///REPO/TYPE/TAG[?version=N], REPO/TYPE/TAG or /REPO/TYPE/TAG')
    .option('--path <path>', 'the resource, as kbs-client: REPO/TYPE/TAG')
    .option('-o, --output <file>', 'write the secret to FILE (created 0600, atomically) instead of stdout')
    .option('--base64', `print the secret as base64 and a newline${kbsClient ? ' (the default, as kbs-client)' : ''}`)
    .option('--raw', `print the raw bytes${kbsClient ? '' : ' (the default)'}`)
    .option('--resource-socket <path>', "fetch through the daemon ('keyhold-agent run --resource-socket PATH'), which holds a fresh attestation, instead of attesting here")
    .addHelpText('after', agentOptionsNote)
    .action(
      ctx.action(async (resource: string | undefined, o: { path?: string; output?: string; base64?: boolean; raw?: boolean; resourceSocket?: string }, cmd: Command) => {
        if ((resource === undefined) === (o.path === undefined)) throw new UsageError('give the resource once: kbs:///REPO/TYPE/TAG or --path REPO/TYPE/TAG');
        if (o.base64 === true && o.raw === true) throw new UsageError('--base64 and --raw exclude each other');
        const m = await nodeCommands();
        const path = m.resourceArgument((resource ?? o.path) as string);
        const encoding: SecretEncoding = o.raw === true ? 'raw' : o.base64 === true || kbsClient ? 'base64' : 'raw';
        const out = { file: o.output, encoding };
        if (o.resourceSocket !== undefined) return m.getResourceThroughSocket(o.resourceSocket, path, out, commonValues(cmd).json === true, io);
        return m.getResource(path, out, await config(cmd), io, await opener());
      }),
    );

  program
    .command('token')
    .alias('attest')
    .description('attest and print the attestation token (EAR)')
    .addHelpText('after', agentOptionsNote)
    .action(ctx.action(async (_o: unknown, cmd: Command) => (await nodeCommands()).printToken(await config(cmd), io, await opener())));

  program
    .command('evidence')
    .description('print TPM evidence JSON (quote over PCRs 0-23, qualifying data = the nonce)')
    .requiredOption('--nonce <b64>', 'base64 nonce (zero-padded or truncated to 32 bytes)')
    .action(ctx.action(async (o: { nonce: string }, cmd: Command) => (await nodeCommands()).printEvidence(o.nonce, await config(cmd), io, await opener())));

  program
    .command('ak')
    .description('print the AK public key (base64 DER SPKI; --json adds its name)')
    .action(ctx.action(async (_o: unknown, cmd: Command) => (await nodeCommands()).printAk(await config(cmd), io, await opener())));

  program
    .command('keyprovider')
    .description('ocicrypt key provider: cmd (request JSON on stdin, answer on stdout; the default) or grpc')
    .argument('[mode]', 'cmd or grpc', 'cmd')
    .option('--listen <addr>', 'grpc: HOST:PORT or unix:/path (default 127.0.0.1:50000)')
    .option('--resource-socket <path>', "fetch KEKs through the daemon ('keyhold-agent run --resource-socket PATH') instead of attesting here")
    .addHelpText('after', '\ncmd exits 1 with one line "keyhold-agent: CODE: message" on stderr when it refuses; grpc serves until SIGINT/SIGTERM.')
    .action(
      ctx.action(async (mode: string, o: { listen?: string; resourceSocket?: string }, cmd: Command) => {
        if (mode !== 'cmd' && mode !== 'grpc') throw new UsageError(`keyprovider mode must be cmd or grpc, not ${JSON.stringify(mode.slice(0, 64))}`);
        if (mode === 'cmd' && o.listen !== undefined) throw new UsageError('--listen is for keyprovider grpc');
        const { runKeyProvider } = await import('./keyprovider/command.js');
        // The TPM layer is loaded only when a KEK is fetched here (not through --resource-socket).
        return runKeyProvider(mode, { listen: o.listen, resourceSocket: o.resourceSocket }, await config(cmd), io, async (c) => (await opener())(c));
      }),
    );

  program
    .command('run')
    .description('attestation daemon: re-attest on an interval, keep a fresh token and (with --node-cert-dir) a node certificate for SPIRE x509pop')
    .option('--interval <duration>', 'time between attestations, jittered ±10% (e.g. 60s, 5m; default 60s)')
    .option('--node-cert-dir <dir>', 'keep key.pem (0600), cert.pem and bundle.pem here: the node key is bound into each attestation and certified by the KBS; renewed at 2/3 of the lifetime')
    .option('--delete-key-on-ban', 'delete key.pem when the KBS answers NodeBanned/NodeRevoked (cert.pem is removed on any refusal)')
    .option('--status-file <file>', 'write the status JSON here (atomically) on every change')
    .option('--health-listen <addr>', 'serve GET /health on this loopback HOST:PORT: 200 while attested, 503 otherwise (port 0: any; the URL is printed on stdout)')
    .option('--log-level <level>', 'fatal, error, warn, info (default), debug, trace or silent; logs go to stderr (JSON, or pretty on a terminal)')
    .option('--resource-socket <path>', "serve secrets to local workloads on this unix socket (created 0600): GET /cdh/resource/REPO/TYPE/TAG, as confidential-data-hub; 'keyhold-agent get-resource --resource-socket PATH' uses it")
    .addHelpText('after', '\nRuns until SIGINT/SIGTERM, then exits 0. One log line per attestation. On a 401/403 from the KBS the node is at once not attested,\nits token is dropped and cert.pem removed; NodeBanned/NodeRevoked stop renewals. Errors without an answer back off exponentially (capped).')
    .action(
      ctx.action(async (o: { interval?: string; nodeCertDir?: string; deleteKeyOnBan?: boolean; statusFile?: string; healthListen?: string; logLevel?: string; resourceSocket?: string }, cmd: Command) => {
        const { runAttestationDaemon } = await import('./daemon/daemon-command.js');
        return runAttestationDaemon(o, await config(cmd), io, await opener());
      }),
    );

  const image = program.command('image').description('encrypted container images');
  image
    .command('decrypt')
    .description('decrypt an image: key-provider layers with KEKs released by the KBS, jwe layers with --decryption-key')
    .requiredOption('-i, --input <ref>', 'encrypted image, oci:DIR:TAG')
    .requiredOption('-o, --output <ref>', 'where the plain image goes, oci:DIR:TAG (nothing is left there on failure)')
    .option('--decryption-key <spec>', 'jwe private key: kbs:///REPO/TYPE/TAG (fetched after attesting) or a PEM/DER file; repeatable', (v: string, prev: string[] = []) => [...prev, v])
    .action(
      ctx.action(async (o: { input: string; output: string; decryptionKey?: string[] }, cmd: Command) => {
        const { imageDecrypt } = await import('./image/decrypt-command.js');
        return imageDecrypt({ input: o.input, output: o.output, decryptionKeys: o.decryptionKey ?? [] }, await config(cmd), io, await opener());
      }),
    );
  return program;
}

/**
 * `keyhold-agent` entry: parse, run one command, report an error as one line (or JSON with
 * --json) and an exit code (0 ok, 1 failure, 2 usage, 3 refused by the KBS, 4 not found).
 */
export async function runAgentCli(argv: readonly string[], io: AgentIo, env: NodeJS.ProcessEnv, opener?: SessionOpener, opts: AgentCliOptions = {}): Promise<number> {
  markPhase('cli:init');
  const state: RunState = {};
  const options = { ...opts, ...(opener !== undefined ? { opener } : {}) };
  return runProgram((ctx) => buildProgram(ctx, env, options, state), argv, io, {
    describeError: async (err) => (await import('./cli-errors.js')).describeAgentError(err, state.config),
  });
}

