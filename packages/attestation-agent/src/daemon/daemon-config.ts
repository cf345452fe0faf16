/**
 * The flags of `keyhold-agent run`, parsed once (beside the agent's shared flags in config.ts).
 */
import { resolve } from 'node:path';
import ms from 'ms';
import { AgentError } from '../errors.js';
import { parseHealthListen, type ListenAddress } from './health-server.js';

export interface DaemonFlags {
  readonly interval?: string | undefined;
  readonly nodeCertDir?: string | undefined;
  readonly deleteKeyOnBan?: boolean | undefined;
  readonly statusFile?: string | undefined;
  readonly healthListen?: string | undefined;
  readonly logLevel?: string | undefined;
  readonly resourceSocket?: string | undefined;
}

export interface DaemonConfig {
  readonly intervalMs: number;
  readonly nodeCertDir: string | undefined;
  readonly deleteKeyOnBan: boolean;
  readonly statusFile: string | undefined;
  readonly healthListen: ListenAddress | undefined;
  readonly logLevel: string;
  /** Where to serve resources to local workloads (absolute), if anywhere. */
  readonly resourceSocket: string | undefined;
}

export const DEFAULT_INTERVAL = '60s';
const MIN_INTERVAL_MS = 1000;
const MAX_INTERVAL_MS = 24 * 3600 * 1000;
const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];

function invalid(msg: string): never {
  throw new AgentError('CONFIG_INVALID', msg);
}

/** A duration as people write it (`2s`, `60s`, `5m`, `1h`); a bare number is refused (its unit would be a guess). */
export function parseIntervalMs(text: string): number | undefined {
  if (text.length > 32 || /^\s*[\d.]+\s*$/.test(text)) return undefined;
  const v = ms(text as ms.StringValue);
  return typeof v === 'number' && Number.isFinite(v) ? v : undefined;
}

export function daemonConfigFrom(flags: DaemonFlags): DaemonConfig {
  const intervalMs = parseIntervalMs(flags.interval ?? DEFAULT_INTERVAL);
  if (intervalMs === undefined || intervalMs < MIN_INTERVAL_MS || intervalMs > MAX_INTERVAL_MS) invalid('--interval must be a duration from 1s to 24h, e.g. 60s or 5m');
  if (flags.deleteKeyOnBan === true && flags.nodeCertDir === undefined) invalid('--delete-key-on-ban needs --node-cert-dir');
  let healthListen: ListenAddress | undefined;
  if (flags.healthListen !== undefined) {
    healthListen = parseHealthListen(flags.healthListen);
    if (healthListen === undefined) invalid('--health-listen must be a loopback HOST:PORT, e.g. 127.0.0.1:9464 or [::1]:9464 (port 0: any free port)');
  }
  if (flags.resourceSocket !== undefined && (flags.resourceSocket === '' || Buffer.byteLength(flags.resourceSocket) > 100)) invalid('--resource-socket must be a path of at most 100 bytes (a unix socket path limit)');
  const logLevel = flags.logLevel ?? 'info';
  if (!LOG_LEVELS.includes(logLevel)) invalid(`--log-level must be one of ${LOG_LEVELS.join(', ')}`);
  return Object.freeze({
    intervalMs,
    nodeCertDir: flags.nodeCertDir !== undefined ? resolve(flags.nodeCertDir) : undefined,
    deleteKeyOnBan: flags.deleteKeyOnBan === true,
    statusFile: flags.statusFile !== undefined ? resolve(flags.statusFile) : undefined,
    healthListen,
    logLevel,
    resourceSocket: flags.resourceSocket !== undefined ? resolve(flags.resourceSocket) : undefined,
  });
}
