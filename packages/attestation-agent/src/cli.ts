import { randomBytes } from 'node:crypto';
import { open, rename, unlink } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { parseArgs } from 'node:util';
import { fitReportData, parseResourceUri, ProtocolError, TPM_REPORT_DATA_BYTES } from '@keyhold/protocol';
import { agentConfigFrom, COMMON_OPTIONS, type AgentConfig, type CommonValues } from './config.js';
import { AgentError } from './errors.js';
import { collectTpmEvidence } from './evidence/tpm-evidence.js';
import { KbsClientError } from './kbs-client/errors.js';
import { openNodeSession, type NodeSession } from './node-session.js';
import { tpm2bPublicToSpkiDer } from './tpm/public-area.js';
import type { TpmDevice } from './tpm/device.js';

export interface AgentIo {
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream;
  stdin?: NodeJS.ReadableStream;
}

const USAGE = `Usage: keyhold-agent <command> [options]

Commands:
  get-resource kbs:///REPO/TYPE/TAG[?version=N] [--output FILE]   attest and fetch a secret (stdout, or FILE created 0600)
  evidence --nonce B64                                            print TPM evidence JSON (quote over PCRs 0-23, qualifying data = nonce)
  token                                                           attest and print the attestation token
  ak                                                              print the AK public key (base64 DER SPKI) and name
  keyprovider [cmd] | keyprovider grpc [--listen ADDR]            ocicrypt key provider (keyhold-agent keyprovider --help)
  image decrypt --input oci:DIR:TAG --output oci:DIR:TAG          decrypt an encrypted image (keyhold-agent image --help)

Options:
  --url URL            KBS base URL (default http://127.0.0.1:8080; env KEYHOLD_KBS_URL)
  -T, --tcti TCTI      TPM access, as tpm2-tools: device:/dev/tpmrm0 (default), swtpm:host=H,port=P, mssim:...
                       (env KEYHOLD_TCTI, TPM2TOOLS_TCTI, TCTI)
  --ak-mode MODE       persistent (default): AK at --ak-handle; stored: AK created under the EK, kept in --state-dir
  --ak-handle HANDLE   persistent AK handle (default 0x81010002)
  --no-ak-create       fail instead of creating an AK when none exists
  --ak-alg rsa|ecc     AK algorithm when one is created (default rsa: RSASSA-SHA256)
  --state-dir DIR      agent state (default ~/.local/state/keyhold-agent; env KEYHOLD_AGENT_STATE_DIR)
  --init-data FILE     init-data TOML: extended into PCR8 once per TPM reset and sent to the KBS
  --tee-key ec|rsa|tpm-rsa|tpm-ecc
                       key the secret is wrapped to (default ec: ephemeral software key, ECDH-ES+A256KW); tpm-rsa /
                       tpm-ecc: created in the TPM under the SRK, certified by the AK, unwrapped in the TPM
  --seal-to-pcrs all|LIST
                       tpm-* keys: usable only while these SHA-256 PCRs keep their current values (PolicyPCR)
  --cache-dir DIR      tpm-* keys: keep released JWEs in DIR and open them without the KBS while they decrypt
  --timeout-ms N       per-request timeout (default 30000)
  --event-log FILE     TCG event log sent as evidence event_log (default /sys/kernel/security/tpm0/binary_bios_measurements
                       when readable and the TPM is not swtpm/mssim); --no-event-log sends none
  --ima-log FILE       IMA ascii_runtime_measurements sent as ima_log (default /sys/kernel/security/ima/ascii_runtime_measurements,
                       same rule); --no-ima-log sends none
  --ek-alg rsa|ecc|ecc384
                       EK named to the KBS for hardware identity (default rsa: TCG template L-1; ecc: L-2 P-256;
                       ecc384: high-range H-3 P-384, the EK swtpm certifies at NV 0x01c00016)
  --no-ek-identity     do not name the EK/AK to the KBS (no credential activation; Trustee's trusted_ak only)
  --tee TEE            evidence type: tpm (default), az-snp-vtpm / az-tdx-vtpm (Azure confidential VM: HCL report
                       from NV 0x01400001, AK at 0x81000003, VCEK / TD quote from Azure IMDS), or auto (detect)
  --vcek-file FILE     az-snp-vtpm: the VCEK (PEM or DER) instead of asking Azure IMDS
  --json               machine-readable output on stdout
Exit codes: 0 success, 1 failure (refused, unreachable, TPM error), 2 usage error.`;

export type SessionOpener = (config: AgentConfig) => Promise<NodeSession>;

/** `keyhold-agent` entry: parse, run one command, map errors to one stderr line and an exit code. */
export async function runAgentCli(argv: string[], io: AgentIo, env: NodeJS.ProcessEnv, opener: SessionOpener = openNodeSession): Promise<number> {
  const [command, ...rest] = argv;
  if (command === undefined || command === '--help' || command === '-h' || command === 'help') {
    io.stderr.write(`${USAGE}\n`);
    return command === undefined ? 2 : 0;
  }
  if (command === '--version') {
    io.stdout.write('keyhold-agent 0.1.0\n');
    return 0;
  }
  // Commands with their own flags parse their own arguments.
  // Loaded on demand: gRPC and the OCI code cost nothing to the other commands' start-up.
  if (command === 'keyprovider') return (await import('./keyprovider/command.js')).runKeyProviderCommand(rest, io, env, opener);
  if (command === 'image') return (await import('./image/decrypt-command.js')).runImageCommand(rest, io, env, opener);
  let values: CommonValues & { output?: string; nonce?: string };
  let positionals: string[];
  try {
    const parsed = parseArgs({ args: rest, options: { ...COMMON_OPTIONS, output: { type: 'string', short: 'o' }, nonce: { type: 'string' } }, allowPositionals: true, strict: true });
    values = parsed.values as typeof values;
    positionals = parsed.positionals;
  } catch (err) {
    io.stderr.write(`keyhold-agent: ${(err as Error).message}\n`);
    return 2;
  }
  if (values.help === true) {
    io.stderr.write(`${USAGE}\n`);
    return 0;
  }
  let config: AgentConfig;
  try {
    config = agentConfigFrom(values, env);
  } catch (err) {
    io.stderr.write(`keyhold-agent: ${(err as Error).message}\n`);
    return 2;
  }
  try {
    switch (command) {
      case 'get-resource':
        return await getResource(positionals, values.output, config, io, opener);
      case 'token':
        return await withSession(config, opener, async (s) => {
          const token = await s.client.token();
          io.stdout.write(config.json ? `${JSON.stringify({ token })}\n` : `${token}\n`);
          return 0;
        });
      case 'evidence':
        return await evidence(values.nonce, config, io, opener);
      case 'ak':
        return await withSession(config, opener, async (s) => {
          const spki = Buffer.from(tpm2bPublicToSpkiDer(s.ak.ak.publicArea)).toString('base64');
          const info = { ak_public: spki, name: Buffer.from(s.ak.ak.name).toString('hex'), alg: s.ak.ak.alg, created: s.ak.created };
          io.stdout.write(config.json ? `${JSON.stringify(info)}\n` : `${spki}\n`);
          return 0;
        });
      default:
        io.stderr.write(`keyhold-agent: unknown command '${command}'\n${USAGE}\n`);
        return 2;
    }
  } catch (err) {
    return reportError(err, io);
  }
}

async function withSession<T>(config: AgentConfig, opener: SessionOpener, fn: (s: NodeSession) => Promise<T>): Promise<T> {
  const session = await opener(config);
  try {
    return await fn(session);
  } finally {
    await session.close();
  }
}

async function getResource(positionals: string[], output: string | undefined, config: AgentConfig, io: AgentIo, opener: SessionOpener): Promise<number> {
  const [uri] = positionals;
  if (uri === undefined || positionals.length !== 1) {
    io.stderr.write('keyhold-agent: get-resource needs one kbs:///REPO/TYPE/TAG URI\n');
    return 2;
  }
  let path;
  try {
    path = parseResourceUri(uri);
  } catch (err) {
    io.stderr.write(`keyhold-agent: ${(err as Error).message}\n`);
    return 2;
  }
  const secret = await withSession(config, opener, (s) => s.client.getResource(path, path.version !== undefined ? { version: path.version } : {}));
  try {
    if (output !== undefined) {
      await writeSecretFile(output, secret);
      io.stderr.write(`keyhold-agent: wrote ${secret.length} bytes to ${output}\n`);
    } else {
      io.stdout.write(secret);
    }
  } finally {
    secret.fill(0);
  }
  return 0;
}

async function evidence(nonceB64: string | undefined, config: AgentConfig, io: AgentIo, opener: SessionOpener): Promise<number> {
  if (nonceB64 === undefined || !/^[A-Za-z0-9+/=_-]+$/.test(nonceB64)) {
    io.stderr.write('keyhold-agent: evidence needs --nonce BASE64\n');
    return 2;
  }
  const nonce = Buffer.from(nonceB64, 'base64');
  return withSession(config, opener, async (s) => {
    const ev = await collectTpmEvidence(s.tpm as TpmDevice, s.ak.ak, fitReportData(nonce, TPM_REPORT_DATA_BYTES));
    io.stdout.write(`${JSON.stringify(ev, null, config.json ? undefined : 2)}\n`);
    return 0;
  });
}

/** Create FILE with mode 0600 atomically: the secret is never visible half-written or world-readable. */
async function writeSecretFile(file: string, secret: Uint8Array): Promise<void> {
  const tmp = join(dirname(file), `.${basename(file)}.${randomBytes(6).toString('hex')}.tmp`);
  const fh = await open(tmp, 'wx', 0o600);
  try {
    await fh.writeFile(secret);
    await fh.sync();
  } catch (err) {
    await fh.close();
    await unlink(tmp).catch(() => undefined);
    throw err;
  }
  await fh.close();
  await rename(tmp, file);
}

function reportError(err: unknown, io: AgentIo): number {
  if (err instanceof KbsClientError || err instanceof AgentError || err instanceof ProtocolError) {
    io.stderr.write(`keyhold-agent: ${err.code}: ${err.message}\n`);
    return 1;
  }
  const e = err as NodeJS.ErrnoException;
  if (typeof e?.code === 'string' && typeof e.message === 'string') {
    io.stderr.write(`keyhold-agent: ${e.code}: ${e.message}\n`);
    return 1;
  }
  io.stderr.write(`keyhold-agent: internal error: ${err instanceof Error ? err.message : String(err)}\n`);
  return 1;
}
