import path from 'node:path';
import type { Clock } from '../clock.js';
import { LocalKeyWrapper, type KeyWrapper } from '../key-wrapper.js';
import { loadOrCreateMasterKey } from '../master-key.js';
import type { BeforeCommitHook } from '../internal/atomic-file.js';
import { SealedRecordCodec } from '../internal/record-codec.js';
import { VersionedStore } from '../internal/versioned-store.js';
import type { SecretStore, StoreLimits } from '../secret-store.js';
import { VaultTransitKeyWrapper, type VaultTransitConfig } from '../vault/vault-transit-key-wrapper.js';
import { FileDriver } from './file-driver.js';
import type { ReadCacheOptions, RecordReadCache } from './read-cache.js';

export interface EmbeddedStoreConfig extends StoreLimits {
  readonly backend: 'embedded';
  /** Directory holding the secrets (created 0700). */
  readonly dir: string;
  /** Master key file (32 raw bytes, created 0600 on first start). Default `<dir>/master.key`. */
  readonly masterKeyFile?: string;
  /** Wrap data keys with this instead of a master key file (e.g. Vault Transit). */
  readonly keyWrapper?: KeyWrapper;
  /** Wrap data keys with Vault Transit instead of a master key file. */
  readonly transit?: VaultTransitConfig;
}

/** Internal knobs for tests (not part of the public config). */
export interface EmbeddedTestHooks {
  readonly clock?: Clock;
  readonly beforeCommit?: BeforeCommitHook;
  /** Read-cache knobs (its clock, sizes); the clock above is not used for it (file times are real). */
  readonly readCache?: ReadCacheOptions;
  /** Receives the file driver's read cache (to observe it in tests). */
  readonly onReadCache?: (cache: RecordReadCache) => void;
}

export async function createEmbeddedStore(config: EmbeddedStoreConfig, hooks: EmbeddedTestHooks = {}): Promise<SecretStore> {
  if (typeof config.dir !== 'string' || config.dir === '') throw new TypeError('embedded store: dir is required');
  const dir = path.resolve(config.dir);
  const transit = config.keyWrapper === undefined && config.transit !== undefined ? new VaultTransitKeyWrapper(config.transit) : undefined;
  const wrapper =
    config.keyWrapper ?? transit ?? new LocalKeyWrapper(await loadOrCreateMasterKey(config.masterKeyFile ?? path.join(dir, 'master.key')));
  const maxValueBytes = config.maxValueBytes ?? 1024 * 1024;
  const driver = new FileDriver(dir, Math.ceil((maxValueBytes * 4) / 3) + 128 * 1024, hooks.beforeCommit, hooks.readCache);
  hooks.onReadCache?.(driver.readCache);
  await driver.init();
  return new VersionedStore(driver, new SealedRecordCodec(wrapper), {
    ...(config.maxValueBytes === undefined ? {} : { maxValueBytes: config.maxValueBytes }),
    ...(config.defaultKeepVersions === undefined ? {} : { defaultKeepVersions: config.defaultKeepVersions }),
    ...(hooks.clock === undefined ? {} : { clock: hooks.clock }),
    ...(transit === undefined ? {} : { onClose: () => transit.close() }),
  });
}
