import { parseArgs } from 'node:util';
import { agentConfigFrom, COMMON_OPTIONS, type AgentConfig, type CommonValues } from '../config.js';
import type { NodeSession } from '../node-session.js';
import { runKeyProviderCmd } from './cmd-mode.js';
import { asKeyProviderError } from './errors.js';
import { DEFAULT_KEYPROVIDER_LISTEN, startKeyProviderGrpcServer } from './grpc-server.js';
import { nodeKekSource } from './node-kek-source.js';
import { createUnwrapService } from './unwrap-service.js';

export interface CommandIo {
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream;
  stdin?: NodeJS.ReadableStream;
}

export const KEYPROVIDER_USAGE = `Usage:
  keyhold-agent keyprovider [cmd] [options]                 ocicrypt cmd key provider: request JSON on stdin, answer on stdout
  keyhold-agent keyprovider grpc [--listen ADDR] [options]  serve keyprovider.KeyProviderService (UnWrapKey) until SIGINT/SIGTERM

  --listen ADDR   HOST:PORT or unix:/path (default ${DEFAULT_KEYPROVIDER_LISTEN})
  plus the common options (--url, --tcti, --ak-handle, ...; see keyhold-agent --help).
Exit codes (cmd): 0 answered, 1 refused (one line 'keyhold-agent: CODE: message' on stderr), 2 usage error.`;

/**
 * `keyhold-agent keyprovider ...`. Both modes unwrap through one {@link createUnwrapService}
 * fed by the node's KBS client (opened on first use: attests when there is no valid token).
 */
export async function runKeyProviderCommand(
  argv: string[],
  io: CommandIo,
  env: NodeJS.ProcessEnv,
  opener: (config: AgentConfig) => Promise<NodeSession>,
  opts: { signal?: AbortSignal; onListening?: (address: string) => void } = {},
): Promise<number> {
  let values: CommonValues & { listen?: string };
  let positionals: string[];
  try {
    const parsed = parseArgs({ args: argv, options: { ...COMMON_OPTIONS, listen: { type: 'string' } }, allowPositionals: true, strict: true });
    values = parsed.values as typeof values;
    positionals = parsed.positionals;
  } catch (err) {
    io.stderr.write(`keyhold-agent: ${(err as Error).message}\n${KEYPROVIDER_USAGE}\n`);
    return 2;
  }
  if (values.help === true) {
    io.stderr.write(`${KEYPROVIDER_USAGE}\n`);
    return 0;
  }
  const mode = positionals[0] ?? 'cmd';
  if (positionals.length > 1 || (mode !== 'cmd' && mode !== 'grpc')) {
    io.stderr.write(`keyhold-agent: keyprovider mode must be cmd or grpc\n${KEYPROVIDER_USAGE}\n`);
    return 2;
  }
  if (mode === 'cmd' && values.listen !== undefined) {
    io.stderr.write('keyhold-agent: --listen is for keyprovider grpc\n');
    return 2;
  }
  let config: AgentConfig;
  try {
    config = agentConfigFrom(values, env);
  } catch (err) {
    io.stderr.write(`keyhold-agent: ${(err as Error).message}\n`);
    return 2;
  }
  const source = nodeKekSource(() => opener(config));
  const service = createUnwrapService(source);
  try {
    if (mode === 'cmd') {
      if (io.stdin === undefined) throw new TypeError('cmd mode needs stdin');
      try {
        await runKeyProviderCmd(service, io.stdin, io.stdout);
        return 0;
      } catch (err) {
        const e = asKeyProviderError(err);
        io.stderr.write(`keyhold-agent: ${e.code}: ${e.message}\n`);
        return 1;
      }
    }
    let server;
    try {
      server = await startKeyProviderGrpcServer({
        service,
        listen: values.listen ?? DEFAULT_KEYPROVIDER_LISTEN,
        onError: (e) => io.stderr.write(`keyhold-agent: UnWrapKey refused: ${e.code}: ${e.message}\n`),
      });
    } catch (err) {
      const e = asKeyProviderError(err);
      io.stderr.write(`keyhold-agent: ${e.code}: ${e.message}\n`);
      return 1;
    }
    io.stdout.write(`${server.address}\n`);
    io.stderr.write(`keyhold-agent: key provider (gRPC keyprovider.KeyProviderService) listening on ${server.address}\n`);
    opts.onListening?.(server.address);
    await new Promise<void>((resolve) => {
      if (opts.signal !== undefined) {
        if (opts.signal.aborted) resolve();
        opts.signal.addEventListener('abort', () => resolve(), { once: true });
        return;
      }
      const stop = (): void => {
        process.off('SIGINT', stop);
        process.off('SIGTERM', stop);
        resolve();
      };
      process.on('SIGINT', stop);
      process.on('SIGTERM', stop);
    });
    await server.close();
    return 0;
  } finally {
    await source.close();
  }
}
