import { readFile } from 'node:fs/promises';
import { Cluster, Redis, type RedisOptions } from 'ioredis';
import { KbsError } from '../../errors.js';
import { IdentityStoreError } from '../../identity/errors.js';
import { checkRedisStoreOptions, withRedisDeadline } from '../../storage/redis-operation.js';
import { StateError } from '../errors.js';

export interface RedisConnectionOptions {
  /** `redis://` or `rediss://` URL of a standalone server (or one reached through a proxy). */
  readonly url?: string;
  /** Seed nodes of a Redis Cluster (instead of `url`). */
  readonly clusterNodes?: readonly { readonly host: string; readonly port: number }[];
  readonly username?: string;
  /** File holding the password (never a flag or an environment variable). */
  readonly passwordFile?: string;
  /** CA certificate (PEM) for TLS to Redis. */
  readonly tlsCaFile?: string;
  /** Key namespace (default `kh`); every key of this state starts with `{<prefix>`. */
  readonly keyPrefix?: string;
  /** Bound on one Redis command (default 1000 ms). */
  readonly commandTimeoutMs?: number;
  /** Bound on one state operation end to end (default 1500 ms): beyond it, STATE_UNAVAILABLE. */
  readonly operationTimeoutMs?: number;
}

export type RedisClient = Redis | Cluster;

/**
 * One client (standalone or Cluster) with short command and connect timeouts and one retry, so an
 * outage turns into errors quickly; the client keeps reconnecting in the background, so the same
 * state works again once the server is back.
 */
export async function connectRedis(o: RedisConnectionOptions): Promise<RedisClient> {
  if ((o.url === undefined) === (o.clusterNodes === undefined)) throw new TypeError('redis state: give exactly one of url and clusterNodes');
  if (o.clusterNodes !== undefined && (o.clusterNodes.length === 0 || o.clusterNodes.some((n) => typeof n.host !== 'string' || !Number.isInteger(n.port) || n.port < 1 || n.port > 65535))) {
    throw new TypeError('redis state: clusterNodes must be a non-empty list of {host, port}');
  }
  const commandTimeout = o.commandTimeoutMs ?? 1000;
  if (!Number.isInteger(commandTimeout) || commandTimeout < 1 || commandTimeout > 600_000) throw new TypeError('redis state: commandTimeoutMs is an integer in 1..600000');
  const password = o.passwordFile === undefined ? undefined : (await readFile(o.passwordFile, 'utf8')).trim();
  const tls = o.tlsCaFile === undefined ? undefined : { ca: await readFile(o.tlsCaFile, 'utf8') };
  const nodeOptions: RedisOptions = {
    commandTimeout,
    connectTimeout: commandTimeout,
    maxRetriesPerRequest: 1,
    ...(o.username === undefined ? {} : { username: o.username }),
    ...(password === undefined ? {} : { password }),
    ...(tls === undefined ? {} : { tls }),
  };
  const client =
    o.url !== undefined
      ? new Redis(o.url, { ...nodeOptions, enableAutoPipelining: true, retryStrategy: (times) => Math.min(times * 100, 1000) })
      : new Cluster(
          o.clusterNodes!.map((n) => ({ host: n.host, port: n.port })),
          {
            redisOptions: nodeOptions,
            enableAutoPipelining: true,
            clusterRetryStrategy: (times) => Math.min(times * 100, 1000),
            retryDelayOnClusterDown: 100,
            retryDelayOnFailover: 100,
            slotsRefreshTimeout: commandTimeout,
          },
        );
  // Auto-pipelining: the commands the concurrent requests issue in one event-loop tick leave in one
  // socket write (per cluster node) instead of one write each: the write syscalls were the largest
  // single cost of Redis state in the flow bench's profile. Order per connection is unchanged; no
  // command of the state blocks the connection (no BLPOP/XREAD BLOCK).
  // Outages surface as typed errors from each operation; the client keeps reconnecting.
  client.on('error', () => undefined);
  return client;
}

/** What every Redis store of the state shares: the client, the key prefix and the deadline. */
export class RedisContext {
  readonly client: RedisClient;
  readonly prefix: string;
  readonly timeoutMs: number;

  constructor(client: RedisClient, options: { readonly keyPrefix?: string; readonly operationTimeoutMs?: number }) {
    const { prefix, timeoutMs } = checkRedisStoreOptions('redis state', options);
    this.client = client;
    this.prefix = prefix;
    this.timeoutMs = timeoutMs;
  }

  /** `{<prefix>:<name>}`: the hash tag of one group of keys (one slot in a Cluster). */
  tag(name: string): string {
    return `{${this.prefix}:${name}}`;
  }

  /**
   * Run one operation under the deadline. Domain errors pass through; a script's KHCORRUPT reply is
   * STATE_CORRUPT; anything else (connection refused, timeout, cluster down) is STATE_UNAVAILABLE.
   */
  op<T>(fn: () => Promise<T>): Promise<T> {
    return withRedisDeadline(this.timeoutMs, fn, (cause) => {
      if (cause instanceof StateError || cause instanceof KbsError || cause instanceof TypeError || cause instanceof IdentityStoreError) return cause;
      const message = (cause as Error | undefined)?.message ?? '';
      if (message.includes('KHCORRUPT')) return new StateError('STATE_CORRUPT', `redis state is corrupt: ${message.slice(message.indexOf('KHCORRUPT') + 10, 200)}`, { cause });
      return new StateError('STATE_UNAVAILABLE', 'redis state is unavailable', { cause });
    });
  }
}

/** A STATE_CORRUPT for data read back from Redis. */
export function corrupt(what: string, cause?: unknown): StateError {
  return new StateError('STATE_CORRUPT', `redis state is corrupt: ${what}`, { cause });
}
