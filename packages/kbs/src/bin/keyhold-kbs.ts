#!/usr/bin/env node
import { pino } from 'pino';
import { ConfigError, loadKbsConfig } from '../config.js';
import { startKbs } from '../main.js';

const USAGE = `Usage: keyhold-kbs serve [--listen HOST:PORT] [--data-dir DIR] [--admin-public-key FILE.pem] [--config FILE] [--log-level LEVEL]

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
  const kbs = await startKbs(config, logger);
  // The URL on stdout, one line, so scripts can read where the KBS listens.
  process.stdout.write(`${kbs.url}\n`);
  await new Promise<void>((resolve) => {
    const stop = (): void => resolve();
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
  });
  logger.info('shutting down');
  await kbs.close();
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
