import type { CliIo } from '@keyhold/command-line';
import type { AgentConfig } from '../config.js';
import type { NodeSession } from '../node-session.js';
import { runKeyProviderCmd } from './cmd-mode.js';
import { asKeyProviderError } from './errors.js';
import { nodeKekSource } from './node-kek-source.js';
import { createUnwrapService } from './unwrap-service.js';

export type CommandIo = CliIo;

/**
 * `keyhold-agent keyprovider [cmd|grpc]`. Both modes unwrap through one {@link createUnwrapService}
 * fed by the node's KBS client (opened on first use: attests when there is no valid token).
 * cmd mode keeps ocicrypt's contract: the answer on stdout, or exit 1 and one line
 * `keyhold-agent: CODE: message` on stderr. grpc mode logs (pino: pretty on a terminal, JSON
 * otherwise) and serves until SIGINT/SIGTERM (or `opts.signal`).
 */
export async function runKeyProvider(
  mode: 'cmd' | 'grpc',
  flags: { listen: string | undefined; resourceSocket?: string | undefined },
  config: AgentConfig,
  io: CommandIo,
  opener: (config: AgentConfig) => Promise<NodeSession>,
  opts: { signal?: AbortSignal; onListening?: (address: string) => void } = {},
): Promise<number> {
  // Through the resident daemon when asked: no TPM session and no handshake in this process.
  const source = flags.resourceSocket !== undefined ? (await import('./socket-kek-source.js')).socketKekSource(flags.resourceSocket) : nodeKekSource(() => opener(config));
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
    // gRPC (and its protobuf runtime) only for grpc mode: cmd mode starts once per layer key.
    const { DEFAULT_KEYPROVIDER_LISTEN, startKeyProviderGrpcServer } = await import('./grpc-server.js');
    const { createCliLogger } = await import('@keyhold/command-line/logger');
    const log = await createCliLogger({ level: 'info', stream: io.stderr });
    let server;
    try {
      server = await startKeyProviderGrpcServer({
        service,
        listen: flags.listen ?? DEFAULT_KEYPROVIDER_LISTEN,
        onError: (e) => log.warn({ code: e.code, reason: e.message }, 'UnWrapKey refused'),
      });
    } catch (err) {
      const e = asKeyProviderError(err);
      io.stderr.write(`keyhold-agent: ${e.code}: ${e.message}\n`);
      return 1;
    }
    io.stdout.write(`${server.address}\n`);
    log.info({ address: server.address, kbs: config.url, tcti: config.tcti }, 'key provider (gRPC keyprovider.KeyProviderService) listening');
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
    log.info('key provider stopping');
    await server.close();
    return 0;
  } finally {
    await source.close();
  }
}
