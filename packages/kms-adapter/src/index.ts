export { KmsError, isKmsError } from './errors.js';
export type { KmsErrorCode } from './errors.js';
export type {
  GenerateOptions,
  GetOptions,
  PutOptions,
  RotateOptions,
  Secret,
  SecretMetadata,
  SecretStore,
  StoreLimits,
} from './secret-store.js';
export { parseResourceName, isValidSegment, checkVersion, MAX_SEGMENT_CHARS, MAX_VERSION } from './resource-name.js';
export type { ResourceName } from './resource-name.js';
export { createSecretStore } from './create-secret-store.js';
export type { SecretStoreConfig } from './create-secret-store.js';
export { createEmbeddedStore } from './embedded/create-embedded-store.js';
export type { EmbeddedStoreConfig } from './embedded/create-embedded-store.js';
export { createRedisStore } from './redis/create-redis-store.js';
export type { RedisStoreConfig } from './redis/create-redis-store.js';
export { createVaultStore } from './vault/create-vault-store.js';
export type { VaultStoreConfig } from './vault/create-vault-store.js';
export type { VaultAuth, VaultConnection } from './vault/vault-client.js';
export { VaultTransitKeyWrapper } from './vault/vault-transit-key-wrapper.js';
export type { VaultTransitConfig } from './vault/vault-transit-key-wrapper.js';
export { LocalKeyWrapper, MASTER_KEY_BYTES } from './key-wrapper.js';
export type { KeyWrapper } from './key-wrapper.js';
export { loadOrCreateMasterKey, readMasterKey } from './master-key.js';
export { RotationScheduler } from './rotation/rotation-scheduler.js';
export type { RotationReport, RotationSchedulerOptions } from './rotation/rotation-scheduler.js';
export { systemClock } from './clock.js';
export type { Clock } from './clock.js';
