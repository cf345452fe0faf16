#!/usr/bin/env node
import cluster from 'node:cluster';
import { pino } from 'pino';
import { ConfigError, loadKbsConfig } from '../config.js';
import { startKbs } from '../main.js';
import { StateError } from '../state/errors.js';
import { runWorkerPrimary, type WorkerListening } from '../state-wiring/serve-workers.js';

const USAGE = `Usage: keyhold-kbs serve [--listen HOST:PORT] [--data-dir DIR] [--admin-public-key FILE.pem] [--config FILE] [--log-level LEVEL] [--workers N]
       keyhold-kbs migrate-state --from embedded|redis --to redis|embedded --config FILE [--data-dir DIR] [--merge]

Runs the Keyhold Key Broker Service (KBS protocol 0.4.0).`;

async function main(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  if (cmd === '--help' || cmd === '-h' || cmd === undefined) {
    process.stderr.write(`${USAGE}\n`);
    return cmd === undefined ? 2 : 0;
  }
  if (cmd === '--version') {
    process.stdout.write('keyhold-kbs 0.1.0\n');
    return 0;
  }
  if (cmd === 'migrate-state') {
    // Loaded on demand: serving never needs the migration code.
    const { runMigrateState } = await import('../state-wiring/migrate-state.js');
    return runMigrateState(rest, process.env, { stdout: (t) => process.stdout.write(t), stderr: (t) => process.stderr.write(t) });
  }
  if (cmd !== 'serve') {
    process.stderr.write(`keyhold-kbs: unknown command ${cmd}\n${USAGE}\n`);
    return 2;
  }
  let config;
  try {
    config = await loadKbsConfig(rest, process.env);
  } catch (err) {
    process.stderr.write(`keyhold-kbs: ${err instanceof ConfigError || err instanceof TypeError ? err.message : String(err)}\n`);
    return 2;
  }
  const logger = pino({ level: config.logLevel }, pino.destination(2));
  if (config.workers > 1 && cluster.isPrimary) return runWorkerPrimary(config, logger, (url) => process.stdout.write(`${url}\n`));
  let kbs;
  try {
    kbs = await startKbs(config, logger);
  } catch (err) {
    // Another KBS holds the embedded data dir: say which process, exit as for a usage error.
    if (err instanceof StateError && err.code === 'STATE_LOCKED') {
      process.stderr.write(`keyhold-kbs: ${err.message}\n`);
      return 2;
    }
    throw err;
  }
  // The URL on stdout, one line, so scripts can read where the KBS listens (a worker tells its primary).
  if (cluster.isWorker) process.send?.({ type: 'keyhold-kbs-listening', url: kbs.url } satisfies WorkerListening);
  else process.stdout.write(`${kbs.url}\n`);
  await new Promise<void>((resolve) => {
    const stop = (): void => resolve();
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
  });
  logger.info('shutting down');
  await kbs.close();
  // A worker's IPC channel to its primary would keep it alive.
  if (cluster.isWorker) cluster.worker?.disconnect();
  return 0;
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    process.stderr.write(`keyhold-kbs: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exitCode = 1;
  },
);
