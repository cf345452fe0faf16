import { writeFileAtomic } from '@keyhold/atomic-file';
import { UsageError, type CliIo } from '@keyhold/command-line';
import { fitReportData, TPM_REPORT_DATA_BYTES, type ResourcePath } from '@keyhold/protocol';
import type { AgentConfig } from './config.js';
import { collectTpmEvidence } from './evidence/tpm-evidence.js';
import type { NodeSession, NodeSessionOptions } from './node-session.js';
import { tpm2bPublicToSpkiDer } from './tpm/public-area.js';
import type { TpmDevice } from './tpm/device.js';
import { markPhase } from './phase-channel.js';
import { printSecret, type SecretEncoding } from './resource-socket/print-secret.js';
import { resourceFromArgument } from './resource-socket/wire.js';

export type SessionOpener = (config: AgentConfig, opts?: Pick<NodeSessionOptions, 'additionalEvidence'>) => Promise<NodeSession>;

export type { SecretEncoding } from './resource-socket/print-secret.js';

async function withSession<T>(config: AgentConfig, opener: SessionOpener, fn: (s: NodeSession) => Promise<T>): Promise<T> {
  const session = await opener(config);
  try {
    return await fn(session);
  } finally {
    await session.close();
    markPhase('close');
  }
}

/**
 * A resource named the way either CLI takes it — `kbs:///REPO/TYPE/TAG[?version=N]` (the agent's
 * and ocicrypt's URI), `REPO/TYPE/TAG` or `/REPO/TYPE/TAG` (kbs-client's `--path`) — as a path.
 */
export function resourceArgument(text: string): ResourcePath & { version?: number } {
  try {
    return resourceFromArgument(text);
  } catch (err) {
    throw new UsageError(`${JSON.stringify(text.slice(0, 200))} is not a resource: ${(err as Error).message}`, { hint: 'write REPO/TYPE/TAG or kbs:///REPO/TYPE/TAG[?version=N]' });
  }
}

/** `get-resource`: attest, fetch one secret, print it (raw or base64) or write it to a 0600 file. */
export async function getResource(
  path: ResourcePath & { version?: number },
  out: SecretOutput,
  config: AgentConfig,
  io: CliIo,
  opener: SessionOpener,
): Promise<number> {
  markPhase('cli:modules');
  const secret = await withSession(config, opener, (s) => s.client.getResource(path, path.version !== undefined ? { version: path.version } : {}));
  await writeSecret(secret, out, config.json, io);
  markPhase('output');
  return 0;
}

/** `get-resource --resource-socket PATH`: the same, fetched through the daemon (no TPM, no handshake here). */
export async function getResourceThroughSocket(socketPath: string, path: ResourcePath & { version?: number }, out: SecretOutput, json: boolean, io: CliIo): Promise<number> {
  const { fetchFromResourceSocket } = await import('./resource-socket/client.js');
  await writeSecret(await fetchFromResourceSocket(socketPath, path), out, json, io);
  return 0;
}

/** Where and how `get-resource` puts the secret. */
export interface SecretOutput {
  readonly file: string | undefined;
  readonly encoding: SecretEncoding;
}

/** Print the secret (raw or base64) or write it to a 0600 file; zeroed afterwards. */
async function writeSecret(secret: Uint8Array, out: SecretOutput, json: boolean, io: CliIo): Promise<void> {
  try {
    if (out.file !== undefined) {
      await writeSecretFile(out.file, secret);
      if (json) io.stdout.write(`${JSON.stringify({ written: out.file, bytes: secret.length })}\n`);
      else io.stderr.write(`keyhold-agent: wrote ${secret.length} bytes to ${out.file}\n`);
    } else {
      await printSecret(secret, out.encoding, io);
    }
  } finally {
    secret.fill(0);
  }
}

/** `token`: attest and print the attestation token. */
export async function printToken(config: AgentConfig, io: CliIo, opener: SessionOpener): Promise<number> {
  return withSession(config, opener, async (s) => {
    const token = await s.client.token();
    io.stdout.write(config.json ? `${JSON.stringify({ token })}\n` : `${token}\n`);
    return 0;
  });
}

/** `ak`: print the AK public key (base64 DER SPKI; with --json also its name and algorithm). */
export async function printAk(config: AgentConfig, io: CliIo, opener: SessionOpener): Promise<number> {
  return withSession(config, opener, async (s) => {
    const spki = Buffer.from(tpm2bPublicToSpkiDer(s.ak.ak.publicArea)).toString('base64');
    const info = { ak_public: spki, name: Buffer.from(s.ak.ak.name).toString('hex'), alg: s.ak.ak.alg, created: s.ak.created };
    io.stdout.write(config.json ? `${JSON.stringify(info)}\n` : `${spki}\n`);
    return 0;
  });
}

/** `evidence --nonce B64`: print TPM evidence JSON whose qualifying data is the nonce. */
export async function printEvidence(nonceB64: string, config: AgentConfig, io: CliIo, opener: SessionOpener): Promise<number> {
  if (!/^[A-Za-z0-9+/=_-]+$/.test(nonceB64)) throw new UsageError('--nonce must be base64');
  const nonce = Buffer.from(nonceB64, 'base64');
  return withSession(config, opener, async (s) => {
    const ev = await collectTpmEvidence(s.tpm as TpmDevice, s.ak.ak, fitReportData(nonce, TPM_REPORT_DATA_BYTES));
    io.stdout.write(`${JSON.stringify(ev, null, config.json ? undefined : 2)}\n`);
    return 0;
  });
}

/** Create FILE with mode 0600 atomically: the secret is never visible half-written or world-readable. */
async function writeSecretFile(file: string, secret: Uint8Array): Promise<void> {
  await writeFileAtomic(file, secret, 0o600);
}
