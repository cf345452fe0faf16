/**
 * `keyhold-kbs serve`: the KBS's command line (commander, the conventions of all Keyhold
 * binaries). The config and the server are imported only when `serve` runs, so `--help` and usage
 * errors answer at once.
 */
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
  return config;
}

async function serve(o: ServeFlags, io: CliIo, env: NodeJS.ProcessEnv, opts: { signal?: AbortSignal }): Promise<number> {
  const config = await loadConfig(o, env);
  const { createCliLogger } = await import('@keyhold/command-line/logger');
  const logger = await createCliLogger({ level: config.logLevel, stream: io.stderr });
  const { startKbs } = await import('./main.js');
  let kbs;
  try {
    kbs = await startKbs(config, logger);
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    if (e.code === 'EADDRINUSE' || e.code === 'EACCES' || e.code === 'EADDRNOTAVAIL') {
      throw new CliError('LISTEN_FAILED', `cannot listen on ${config.host}:${config.port}: ${e.code}`, { cause: err, hint: 'choose another address with --listen HOST:PORT (port 0 picks a free one)' });
    }
    throw new CliError('START_FAILED', `cannot start: ${e.message}`, { cause: err });
  }
  // The URL on stdout, one line, so scripts can read where the KBS listens.
  io.stdout.write(`${kbs.url}\n`);
  await new Promise<void>((resolve) => {
    if (opts.signal !== undefined) {
      if (opts.signal.aborted) resolve();
      opts.signal.addEventListener('abort', () => resolve(), { once: true });
      return;
    }
    process.once('SIGINT', () => resolve());
    process.once('SIGTERM', () => resolve());
  });
  logger.info('shutting down');
  await kbs.close();
  return 0;
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
        .action(ctx.action(async (o: ServeFlags) => serve(o, ctx.io, env, opts)));
      return program;
    },
    argv,
    io,
    { describeError: (err) => (err instanceof CliError ? err : describeFileError(err)) },
  );
}
