export { freePort, freePorts, spawnProcess, waitForPort } from './process-launcher.js';
export type { RunningService, SpawnedProcess, SpawnOptions } from './process-launcher.js';
export { startSwtpm, tpm2ToolsPcrFile, SWTPM_LOCALCA_DIR, SWTPM_LOCALCA_ROOT_CERT, SWTPM_LOCALCA_ISSUER_CERT } from './swtpm.js';
export type { RunningSwtpm, StartSwtpmOptions } from './swtpm.js';
export { startRedis, startRedisCluster } from './redis.js';
export type { RedisCluster, RedisClusterNode, RedisServer, StartRedisOptions } from './redis.js';
export * from './cvm/index.js';
