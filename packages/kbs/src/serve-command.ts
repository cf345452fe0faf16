/**
 * `keyhold-kbs serve`: the KBS's command line (commander, the conventions of all Keyhold
 * binaries). The config and the server are imported only when `serve` runs, so `--help` and usage
 * errors answer at once.
 */
import cluster from 'node:cluster';
import { createPrivateKey, createPublicKey } from 'node:crypto';
import { open } from 'node:fs/promises';
import { CliError, Command, describeFileError, runProgram, UsageError, type CliIo } from '@keyhold/command-line';
import type { KbsConfig } from './config.js';

const MAX_KEY_FILE_BYTES = 64 * 1024;

interface ServeFlags {
  listen?: string;
  dataDir?: string;
  adminPublicKey?: string;
  config?: string;
  logLevel?: string;
  insecureAdminAllowAll?: boolean;
  insecureHttp?: boolean;
  workers?: string;
}

interface MigrateFlags {
  from?: string;
  to?: string;
  config?: string;
  dataDir?: string;
  merge?: boolean;
}

async function readKeyFile(file: string): Promise<string> {
  const fh = await open(file, 'r');
  try {
    const buf = Buffer.alloc(MAX_KEY_FILE_BYTES + 1);
    const { bytesRead } = await fh.read(buf, 0, buf.length, 0);
    if (bytesRead > MAX_KEY_FILE_BYTES) throw new UsageError(`${file} is too large for a key file`);
    return buf.subarray(0, bytesRead).toString('utf8');
  } finally {
    await fh.close();
  }
}

/**
 * Refuse an admin key file that is not a public key. node's createPublicKey accepts a PRIVATE key
 * too (it derives the public half), so a private key given as `--admin-public-key` would silently
 * work — and sit on the KBS host, where whoever reads it can mint admin tokens.
 */
export async function checkAdminPublicKeyFile(file: string, what: string): Promise<void> {
  const text = await readKeyFile(file);
  let isPrivate = /-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----/.test(text);
  if (!isPrivate) {
    try {
      createPrivateKey(text);
      isPrivate = true;
    } catch {
      /* not a private key: good */
    }
  }
  // SECURITY: a private key must never be taken for the admin public key (admin-token forgery by
  // anyone who can read the KBS host's files; the owner's key belongs with the owner).
  if (isPrivate) {
    throw new UsageError(`${what} ${file} is a PRIVATE key; the KBS needs only the public half`, {
      hint: `write the public key with: openssl pkey -in ${file} -pubout -out admin.pub.pem — and keep ${file} away from the KBS host`,
    });
  }
  try {
    createPublicKey(text);
  } catch (cause) {
    throw new UsageError(`${what} ${file} is not a PEM public key`, { cause, hint: 'an Ed25519 or EC P-256 public key, e.g. from: openssl pkey -in admin.key.pem -pubout' });
  }
}

/** The argv loadKbsConfig parses, rebuilt from the flags commander checked. */
function configArgv(o: ServeFlags): string[] {
  return [
    ...(o.listen !== undefined ? ['--listen', o.listen] : []),
    ...(o.dataDir !== undefined ? ['--data-dir', o.dataDir] : []),
    ...(o.adminPublicKey !== undefined ? ['--admin-public-key', o.adminPublicKey] : []),
    ...(o.config !== undefined ? ['--config', o.config] : []),
    ...(o.logLevel !== undefined ? ['--log-level', o.logLevel] : []),
    ...(o.insecureAdminAllowAll === true ? ['--insecure-admin-allow-all'] : []),
    ...(o.insecureHttp === true ? ['--insecure-http'] : []),
    ...(o.workers !== undefined ? ['--workers', o.workers] : []),
  ];
}

async function loadConfig(o: ServeFlags, env: NodeJS.ProcessEnv): Promise<KbsConfig> {
  const { loadKbsConfig, ConfigError } = await import('./config.js');
  let config: KbsConfig;
  try {
    config = await loadKbsConfig(configArgv(o), env);
  } catch (err) {
    if (err instanceof ConfigError || err instanceof TypeError) throw new UsageError(err.message, { cause: err });
    throw err;
  }
  if (config.adminPublicKeyFile !== undefined) await checkAdminPublicKeyFile(config.adminPublicKeyFile, '--admin-public-key');
  for (const id of config.owners.admin.identities) await checkAdminPublicKeyFile(id.publicKeyFile, `[admin] identity ${id.name}: public_key_file`);
  const { NO_TRANSPORT_MESSAGE, NO_TRANSPORT_HINT } = await import('./http-server/http-server-config.js');
  // SECURITY: tokens, cookies and released secrets never cross the network in clear by default:
  // without a certificate, plain HTTP must be asked for (Trustee's insecure_http) (RFC 9325).
  if (config.httpServer.tls === undefined && !config.httpServer.insecureHttp) throw new UsageError(NO_TRANSPORT_MESSAGE, { hint: NO_TRANSPORT_HINT });
  return config;
}

async function serve(o: ServeFlags, io: CliIo, env: NodeJS.ProcessEnv, opts: { signal?: AbortSignal }): Promise<number> {
  const config = await loadConfig(o, env);
  const { createCliLogger } = await import('@keyhold/command-line/logger');
  const logger = await createCliLogger({ level: config.logLevel, stream: io.stderr });
  if (config.workers > 1 && cluster.isPrimary) {
    // `--workers N`: this process forks N KBS workers (node:cluster) sharing one listening socket.
    const { runWorkerPrimary } = await import('./state-wiring/serve-workers.js');
    return runWorkerPrimary(config, logger, (url) => io.stdout.write(`${url}\n`));
  }
  const { startKbs } = await import('./main.js');
  const { StateError } = await import('./state/errors.js');
  let kbs;
  try {
    kbs = await startKbs(config, logger);
  } catch (err) {
    // Another KBS holds the embedded data dir: say which process, exit as for a usage error.
    if (err instanceof StateError && err.code === 'STATE_LOCKED') throw new UsageError(err.message, { cause: err, hint: 'stop the other KBS, or give this one its own --data-dir (or shared [state] backend = "redis")' });
    // A certificate or key that does not load is a configuration error, named with its file.
    if ((err as { code?: unknown }).code === 'TLS_MATERIAL_INVALID') throw new UsageError((err as Error).message, { cause: err });
    const e = err as NodeJS.ErrnoException;
    if (e.code === 'EADDRINUSE' || e.code === 'EACCES' || e.code === 'EADDRNOTAVAIL') {
      throw new CliError('LISTEN_FAILED', `cannot listen on ${config.host}:${config.port}: ${e.code}`, { cause: err, hint: 'choose another address with --listen HOST:PORT (port 0 picks a free one)' });
    }
    throw new CliError('START_FAILED', `cannot start: ${e.message}`, { cause: err });
  }
  // The URL on stdout, one line, so scripts can read where the KBS listens (a worker tells its primary).
  if (cluster.isWorker) process.send?.({ type: 'keyhold-kbs-listening', url: kbs.url });
  else io.stdout.write(`${kbs.url}\n`);
  // SIGHUP: read the TLS certificate and key again (renewed certificates) without dropping the listener.
  const onHup = (): void => {
    kbs.reloadTls().then(
      (tls) => logger.info(tls === undefined ? { tls: false } : { tls }, tls === undefined ? 'SIGHUP: plain HTTP, no TLS material to reload' : 'SIGHUP: TLS certificate reloaded; new connections use it'),
      (err: unknown) => logger.error({ err: (err as Error).message }, 'SIGHUP: TLS reload refused; still serving the previous certificate'),
    );
  };
  process.on('SIGHUP', onHup);
  await new Promise<void>((resolve) => {
    if (opts.signal !== undefined) {
      if (opts.signal.aborted) resolve();
      opts.signal.addEventListener('abort', () => resolve(), { once: true });
      return;
    }
    process.once('SIGINT', () => resolve());
    process.once('SIGTERM', () => resolve());
  });
  process.off('SIGHUP', onHup);
  logger.info('shutting down');
  await kbs.close();
  // A worker's IPC channel to its primary would keep it alive.
  if (cluster.isWorker) cluster.worker?.disconnect();
  return 0;
}

/** `keyhold-kbs migrate-state`: the flags commander checked, handed to the migration (state-wiring/migrate-state.ts). */
async function migrate(o: MigrateFlags, io: CliIo, env: NodeJS.ProcessEnv): Promise<number> {
  const { runMigrateState } = await import('./state-wiring/migrate-state.js');
  const argv = [
    ...(o.from !== undefined ? ['--from', o.from] : []),
    ...(o.to !== undefined ? ['--to', o.to] : []),
    ...(o.config !== undefined ? ['--config', o.config] : []),
    ...(o.dataDir !== undefined ? ['--data-dir', o.dataDir] : []),
    ...(o.merge === true ? ['--merge'] : []),
  ];
  return runMigrateState(argv, env, { stdout: (t) => io.stdout.write(t), stderr: (t) => io.stderr.write(t) });
}

/** `keyhold-kbs` entry: exit 0 after a clean shutdown, 2 on a usage or config error, 1 when it cannot start. */
export async function runKbsCli(argv: readonly string[], io: CliIo, env: NodeJS.ProcessEnv, opts: { signal?: AbortSignal } = {}): Promise<number> {
  return runProgram(
    (ctx) => {
      const program = new Command('keyhold-kbs').description('Keyhold Key Broker Service (KBS protocol 0.4.0)').version('keyhold-kbs 0.1.0', '--version');
      program
        .command('serve')
        .description('serve the KBS; prints its URL on stdout, logs on stderr (pretty on a terminal, JSON otherwise); stops on SIGINT/SIGTERM')
        .option('--listen <host:port>', 'address to serve on (default 127.0.0.1:8080; env KEYHOLD_KBS_LISTEN)')
        .option('--data-dir <dir>', 'state directory (default ./.keyhold/kbs; env KEYHOLD_KBS_DATA_DIR)')
        .option('--admin-public-key <file>', 'admin identity "admin": an Ed25519 or P-256 PUBLIC key, PEM (env KEYHOLD_KBS_ADMIN_PUBLIC_KEY)')
        .option('-c, --config <file>', 'config file, TOML (or .json) (env KEYHOLD_KBS_CONFIG)')
        .option('--log-level <level>', 'fatal, error, warn, info (default), debug, trace, silent (env KEYHOLD_KBS_LOG_LEVEL)')
        .option('--insecure-admin-allow-all', 'honour [admin] insecure_allow_all = true (no admin tokens at all; testing only)')
        .option('--insecure-http', 'serve plain HTTP (no TLS): secrets and tokens cross the network in clear; tests and loopback only (= [http_server] insecure_http = true)')
        .option('--workers <n>', 'run N KBS processes on this host (node:cluster); needs [state] backend = "redis"')
        .action(ctx.action(async (o: ServeFlags) => serve(o, ctx.io, env, opts)));
      program
        .command('migrate-state')
        .description('copy the KBS state (nodes, reference values, EK allowlist and CA uploads, policies, audit trail) between backends; progress on stderr, JSON summary on stdout')
        .requiredOption('--from <backend>', 'embedded or redis')
        .requiredOption('--to <backend>', 'redis or embedded')
        .requiredOption('-c, --config <file>', 'the KBS config file naming the data dir and the Redis ([state] or [storage])')
        .option('--data-dir <dir>', 'the embedded data dir (default from the config)')
        .option('--merge', 'copy into a target that already holds state (target records win; the audit trail is re-chained)')
        .action(ctx.action(async (o: MigrateFlags) => migrate(o, ctx.io, env)));
      return program;
    },
    argv,
    io,
    { describeError: (err) => (err instanceof CliError ? err : describeFileError(err)) },
  );
}
