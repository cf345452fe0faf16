import { type KeyObject } from 'node:crypto';
import { rmSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { OcicryptError } from '@keyhold/ocicrypt';
import { ProtocolError } from '@keyhold/protocol';
import { agentConfigFrom, COMMON_OPTIONS, type AgentConfig, type CommonValues } from '../config.js';
import { AgentError } from '../errors.js';
import { KbsClientError } from '../kbs-client/errors.js';
import { KeyProviderError } from '../keyprovider/errors.js';
import type { CommandIo } from '../keyprovider/command.js';
import { nodeKekSource } from '../keyprovider/node-kek-source.js';
import { createUnwrapService } from '../keyprovider/unwrap-service.js';
import type { NodeSession } from '../node-session.js';
import { decryptImageOnNode, loadDecryptionKey } from './decrypt.js';
import { parseOciRef } from './oci-ref.js';
import { terminalProgress } from './progress-bar.js';

export const IMAGE_USAGE = `Usage:
  keyhold-agent image decrypt --input oci:DIR:TAG --output oci:DIR:TAG [--decryption-key kbs:///REPO/TYPE/TAG | FILE]... [options]

  Decrypts every encrypted layer: attestation-agent key-provider packets with KEKs released by the
  KBS (attesting first), and ocicrypt jwe recipients with --decryption-key private keys (PEM or
  DER PKCS#8; kbs:/// keys are fetched from the KBS). Writes a plain layout; on failure nothing
  is left at the output. Progress on stderr when it is a terminal; --json prints a summary.
  Common options: --url, --tcti, --ak-handle, ... (see keyhold-agent --help).`;

/** `keyhold-agent image decrypt ...`. */
export async function runImageCommand(argv: string[], io: CommandIo, env: NodeJS.ProcessEnv, opener: (config: AgentConfig) => Promise<NodeSession>): Promise<number> {
  let values: CommonValues & { input?: string; output?: string; 'decryption-key'?: string[] };
  let positionals: string[];
  try {
    const parsed = parseArgs({
      args: argv,
      options: { ...COMMON_OPTIONS, input: { type: 'string', short: 'i' }, output: { type: 'string', short: 'o' }, 'decryption-key': { type: 'string', multiple: true } },
      allowPositionals: true,
      strict: true,
    });
    values = parsed.values as typeof values;
    positionals = parsed.positionals;
  } catch (err) {
    io.stderr.write(`keyhold-agent: ${(err as Error).message}\n${IMAGE_USAGE}\n`);
    return 2;
  }
  if (values.help === true) {
    io.stderr.write(`${IMAGE_USAGE}\n`);
    return 0;
  }
  const usage = (msg: string): number => {
    io.stderr.write(`keyhold-agent: ${msg}\n${IMAGE_USAGE}\n`);
    return 2;
  };
  if (positionals.length !== 1 || positionals[0] !== 'decrypt') return usage('image needs the action decrypt');
  if (values.input === undefined || values.output === undefined) return usage('image decrypt needs --input and --output');
  let config: AgentConfig;
  let input;
  let output;
  try {
    input = parseOciRef(values.input);
    output = parseOciRef(values.output);
    config = agentConfigFrom(values, env);
  } catch (err) {
    return usage((err as Error).message);
  }
  const source = nodeKekSource(() => opener(config));
  const service = createUnwrapService(source);
  const progress = terminalProgress(io.stderr, 'decrypt');
  let staging: string | undefined;
  // On SIGINT/SIGTERM the private staging directory (which may hold plaintext layers) goes first.
  const onSignal = (sig: NodeJS.Signals): void => {
    if (staging !== undefined) rmSync(staging, { recursive: true, force: true });
    process.exit(sig === 'SIGINT' ? 130 : 143);
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    const keys: KeyObject[] = [];
    for (const spec of values['decryption-key'] ?? []) keys.push(await loadDecryptionKey(spec, source));
    const res = await decryptImageOnNode({
      input,
      output,
      service,
      jweKeys: keys,
      ...(progress.onProgress !== undefined ? { onProgress: progress.onProgress } : {}),
      onStaging: (d) => {
        staging = d;
      },
    });
    progress.done();
    const decrypted = res.layers.filter((l) => l.transformed).length;
    if (config.json) io.stdout.write(`${JSON.stringify({ output: values.output, manifest: res.manifest, layers: res.layers })}\n`);
    io.stderr.write(`keyhold-agent: decrypted ${decrypted} of ${res.layers.length} layers into ${values.output}\n`);
    return 0;
  } catch (err) {
    progress.done();
    return reportImageError(err, io);
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    await source.close();
  }
}

function reportImageError(err: unknown, io: CommandIo): number {
  if (err instanceof KeyProviderError || err instanceof OcicryptError || err instanceof KbsClientError || err instanceof AgentError || err instanceof ProtocolError) {
    io.stderr.write(`keyhold-agent: image decrypt failed: ${err.code}: ${err.message}\n`);
    return 1;
  }
  const e = err as NodeJS.ErrnoException;
  if (typeof e?.code === 'string') {
    io.stderr.write(`keyhold-agent: image decrypt failed: ${e.code}: ${e.message}\n`);
    return 1;
  }
  io.stderr.write(`keyhold-agent: image decrypt failed: internal error: ${err instanceof Error ? err.message : String(err)}\n`);
  return 1;
}
