export type * from './ports.js';
export { StateError, type StateErrorCode } from './errors.js';
export { updateNode, MAX_NODE_UPDATE_ATTEMPTS } from './node-update.js';
export { openEmbeddedState, openMemoryState, STATE_LOCK_FILE } from './embedded/open-embedded-state.js';
export type { EmbeddedKbsState, EmbeddedStateOptions, MemoryStateOptions } from './embedded/open-embedded-state.js';
export { openStateAuditLog } from './state-audit-log.js';
export { openRedisState } from './redis/open-redis-state.js';
export type { RedisKbsState, RedisStateOptions } from './redis/open-redis-state.js';
export type { RedisConnectionOptions } from './redis/redis-connection.js';
