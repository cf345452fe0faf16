import { type KeyObject } from 'node:crypto';
import { rmSync } from 'node:fs';
import { UsageError, type CliIo } from '@keyhold/command-line';
import { imageProgressBar } from '@keyhold/command-line/progress';
import type { AgentConfig } from '../config.js';
import { nodeKekSource } from '../keyprovider/node-kek-source.js';
import { createUnwrapService } from '../keyprovider/unwrap-service.js';
import type { NodeSession } from '../node-session.js';
import { decryptImageOnNode, loadDecryptionKey } from './decrypt.js';
import { parseOciRef } from './oci-ref.js';

/**
 * `keyhold-agent image decrypt --input oci:DIR:TAG --output oci:DIR:TAG [--decryption-key K]...`:
 * decrypts key-provider layers with KEKs the KBS releases (attesting first) and jwe layers with
 * the given private keys (files, or kbs:/// resources). Writes a plain layout; on failure (or
 * SIGINT/SIGTERM) nothing is left at the output. Progress bar on stderr when it is a terminal.
 */
export async function imageDecrypt(
  flags: { input: string; output: string; decryptionKeys: readonly string[] },
  config: AgentConfig,
  io: CliIo,
  opener: (config: AgentConfig) => Promise<NodeSession>,
): Promise<number> {
  let input;
  let output;
  try {
    input = parseOciRef(flags.input);
    output = parseOciRef(flags.output);
  } catch (err) {
    throw new UsageError((err as Error).message, { hint: 'images are named as skopeo names them: oci:DIR:TAG' });
  }
  const source = nodeKekSource(() => opener(config));
  const service = createUnwrapService(source);
  const progress = imageProgressBar(io.stderr, 'decrypt');
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
    for (const spec of flags.decryptionKeys) keys.push(await loadDecryptionKey(spec, source));
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
    if (config.json) io.stdout.write(`${JSON.stringify({ output: flags.output, manifest: res.manifest, layers: res.layers })}\n`);
    io.stderr.write(`keyhold-agent: decrypted ${decrypted} of ${res.layers.length} layers into ${flags.output}\n`);
    return 0;
  } finally {
    progress.done();
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    await source.close();
  }
}
