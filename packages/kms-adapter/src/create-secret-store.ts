import { createEmbeddedStore, type EmbeddedStoreConfig } from './embedded/create-embedded-store.js';
import { createRedisStore, type RedisStoreConfig } from './redis/create-redis-store.js';
import type { SecretStore } from './secret-store.js';
import { createVaultStore, type VaultStoreConfig } from './vault/create-vault-store.js';

/** The KBS's KMS configuration: one of the three backends. */
export type SecretStoreConfig = EmbeddedStoreConfig | RedisStoreConfig | VaultStoreConfig;

/**
 * Open the configured backend. Bad configuration throws TypeError (programmer/operator error at
 * start); an unusable master key file throws KMS_CONFIG. A Redis or Vault server that is down
 * does not fail this call: operations fail with KMS_UNAVAILABLE until it is back.
 */
export function createSecretStore(config: SecretStoreConfig): Promise<SecretStore> {
  switch (config.backend) {
    case 'embedded':
      return createEmbeddedStore(config);
    case 'redis':
      return createRedisStore(config);
    case 'vault':
      return createVaultStore(config);
    default:
      throw new TypeError(`unknown KMS backend ${String((config as { backend?: unknown }).backend)}`);
  }
}
