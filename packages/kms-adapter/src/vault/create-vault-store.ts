import type { KeyWrapper } from '../key-wrapper.js';
import { PlainRecordCodec, SealedRecordCodec } from '../internal/record-codec.js';
import { VersionedStore } from '../internal/versioned-store.js';
import type { SecretStore, StoreLimits } from '../secret-store.js';
import { checkVaultPath, VaultClient, type VaultConnection } from './vault-client.js';
import { VaultKvDriver } from './vault-kv-driver.js';

export interface VaultStoreConfig extends StoreLimits, VaultConnection {
  readonly backend: 'vault';
  /** KV engine version (default 2). v1 has no check-and-set: concurrent writers must be in one process. */
  readonly kvVersion?: 1 | 2;
  /** Mount path of the KV engine (default `secret`). */
  readonly mount?: string;
  /** Folder under the mount holding Keyhold's resources (default `keyhold`). */
  readonly pathPrefix?: string;
  /**
   * Also seal values before they reach Vault (e.g. a VaultTransitKeyWrapper or LocalKeyWrapper).
   * Without it, values are stored base64-encoded and protected by Vault's own encryption at rest.
   */
  readonly keyWrapper?: KeyWrapper;
}

export function createVaultStore(config: VaultStoreConfig): Promise<SecretStore> {
  const kv = config.kvVersion ?? 2;
  if (kv !== 1 && kv !== 2) throw new TypeError('vault store: kvVersion is 1 or 2');
  const mount = checkVaultPath(config.mount ?? 'secret', 'mount');
  const prefix = checkVaultPath(config.pathPrefix ?? 'keyhold', 'pathPrefix');
  const driver = new VaultKvDriver(new VaultClient(config), mount, prefix, kv);
  const codec = config.keyWrapper === undefined ? new PlainRecordCodec() : new SealedRecordCodec(config.keyWrapper);
  return Promise.resolve(
    new VersionedStore(driver, codec, {
      ...(config.maxValueBytes === undefined ? {} : { maxValueBytes: config.maxValueBytes }),
      ...(config.defaultKeepVersions === undefined ? {} : { defaultKeepVersions: config.defaultKeepVersions }),
    }),
  );
}
