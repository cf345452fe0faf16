import { readFileSync } from 'node:fs';
import { Cluster, Redis, type RedisOptions } from 'ioredis';
import type { Clock } from '../clock.js';
import { LocalKeyWrapper, type KeyWrapper } from '../key-wrapper.js';
import { loadOrCreateMasterKey } from '../master-key.js';
import { SealedRecordCodec } from '../internal/record-codec.js';
import { VersionedStore } from '../internal/versioned-store.js';
import type { SecretStore, StoreLimits } from '../secret-store.js';
import { VaultTransitKeyWrapper, type VaultTransitConfig } from '../vault/vault-transit-key-wrapper.js';
import { RedisDriver } from './redis-driver.js';

export interface RedisStoreConfig extends StoreLimits {
  readonly backend: 'redis';
  /** Standalone server: `redis://[user:pass@]host:port[/db]` or `rediss://...`. */
  readonly url?: string;
  /** Redis Cluster seed nodes (instead of `url`). */
  readonly cluster?: { readonly nodes: ReadonlyArray<{ readonly host: string; readonly port: number }> };
  /**
   * Master key file (32 raw bytes, created 0600 if absent) for wrapping data keys; it stays with
   * the KBS and is never sent to Redis. Required unless `transit` or `keyWrapper` is given.
   */
  readonly masterKeyFile?: string;
  /** Wrap data keys with this instead (e.g. Vault Transit). */
  readonly keyWrapper?: KeyWrapper;
  /** Wrap data keys with Vault Transit instead of a master key file. */
  readonly transit?: VaultTransitConfig;
  /** Key namespace (default `kh`): keys are `{kh:repo/type/tag}:i` and `{kh:repo/type/tag}:r`. */
  readonly keyPrefix?: string;
  readonly username?: string;
  readonly password?: string;
  /** TLS: PEM CA bundle file to trust (enables TLS for cluster nodes; `rediss://` for standalone). */
  readonly tlsCaFile?: string;
  /** Per-command timeout inside ioredis (default 1000 ms). */
  readonly commandTimeoutMs?: number;
  /** Bound on one store operation end to end (default 1500 ms); beyond it, KMS_UNAVAILABLE. */
  readonly operationTimeoutMs?: number;
  /** Reconnect attempts a queued command waits for before failing (default 1). */
  readonly maxRetriesPerRequest?: number;
}

const PREFIX = /^[A-Za-z0-9_.-]{1,32}$/;

export async function createRedisStore(config: RedisStoreConfig, hooks: { clock?: Clock } = {}): Promise<SecretStore> {
  const prefix = config.keyPrefix ?? 'kh';
  if (!PREFIX.test(prefix)) throw new TypeError('redis store: keyPrefix must match ^[A-Za-z0-9_.-]{1,32}$');
  if ((config.url === undefined) === (config.cluster === undefined)) throw new TypeError('redis store: give exactly one of url or cluster');
  if (config.cluster !== undefined && config.cluster.nodes.length === 0) throw new TypeError('redis store: cluster.nodes is empty');
  const commandTimeout = positive(config.commandTimeoutMs ?? 1000, 'commandTimeoutMs');
  const opTimeoutMs = positive(config.operationTimeoutMs ?? 1500, 'operationTimeoutMs');
  const maxRetriesPerRequest = config.maxRetriesPerRequest ?? 1;
  if (!Number.isInteger(maxRetriesPerRequest) || maxRetriesPerRequest < 0 || maxRetriesPerRequest > 20) {
    throw new TypeError('redis store: maxRetriesPerRequest is an integer in 0..20');
  }
  const transit = config.keyWrapper === undefined && config.transit !== undefined ? new VaultTransitKeyWrapper(config.transit) : undefined;
  let wrapper = config.keyWrapper ?? transit;
  if (wrapper === undefined) {
    if (config.masterKeyFile === undefined) throw new TypeError('redis store: masterKeyFile, transit or keyWrapper is required');
    wrapper = new LocalKeyWrapper(await loadOrCreateMasterKey(config.masterKeyFile));
  }
  const tls = config.tlsCaFile === undefined ? undefined : { ca: readFileSync(config.tlsCaFile, 'utf8') };
  const nodeOptions: RedisOptions = {
    commandTimeout,
    maxRetriesPerRequest,
    connectTimeout: commandTimeout,
    ...(config.username === undefined ? {} : { username: config.username }),
    ...(config.password === undefined ? {} : { password: config.password }),
    ...(tls === undefined ? {} : { tls }),
  };
  const client =
    config.url !== undefined
      ? new Redis(config.url, { ...nodeOptions, retryStrategy: (times) => Math.min(times * 100, 1000) })
      : new Cluster(
          config.cluster?.nodes.map((n) => ({ host: n.host, port: n.port })) ?? [],
          {
            redisOptions: nodeOptions,
            clusterRetryStrategy: (times) => Math.min(times * 100, 1000),
            retryDelayOnClusterDown: 100,
            retryDelayOnFailover: 100,
            slotsRefreshTimeout: commandTimeout,
          },
        );
  // Libraries don't log: connection errors surface as KMS_UNAVAILABLE on the operations instead.
  client.on('error', () => undefined);
  // Give the first connection a moment so the first operation does not race it; if Redis is down
  // the store is still returned and operations fail with KMS_UNAVAILABLE until it comes back.
  await new Promise<void>((resolve) => {
    const t = setTimeout(resolve, opTimeoutMs);
    client.once('ready', () => {
      clearTimeout(t);
      resolve();
    });
  });
  const maxValueBytes = config.maxValueBytes ?? 1024 * 1024;
  const driver = new RedisDriver(client, prefix, opTimeoutMs, Math.ceil((maxValueBytes * 4) / 3) + 128 * 1024);
  return new VersionedStore(driver, new SealedRecordCodec(wrapper), {
    ...(config.maxValueBytes === undefined ? {} : { maxValueBytes: config.maxValueBytes }),
    ...(config.defaultKeepVersions === undefined ? {} : { defaultKeepVersions: config.defaultKeepVersions }),
    ...(hooks.clock === undefined ? {} : { clock: hooks.clock }),
    ...(transit === undefined ? {} : { onClose: () => transit.close() }),
  });
}

function positive(n: number, what: string): number {
  if (!Number.isInteger(n) || n < 1 || n > 600_000) throw new TypeError(`redis store: ${what} is an integer in 1..600000 ms`);
  return n;
}
