import { startRedis, startRedisCluster, type RedisCluster, type RedisServer } from '@keyhold/test-harness';
import { afterAll } from 'vitest';
import { DEFAULT_LIMITS, runStateConformance } from './conformance.test-support.js';
import { openRedisState } from './redis/open-redis-state.js';

// Durable servers: every acknowledged write is on disk before Redis answers.
const AOF = ['--appendonly', 'yes', '--appendfsync', 'always'];
const OPERATION_TIMEOUT_MS = 1500;
const standalone: RedisServer = await startRedis({ args: AOF });
const cluster: RedisCluster = await startRedisCluster({ masters: 3, args: AOF });
afterAll(async () => {
  await standalone.stop();
  await cluster.stop();
});

runStateConformance('redis standalone', {
  open: (scope, o) => openRedisState({ url: standalone.url, keyPrefix: scope, sessionLimits: o?.sessionLimits ?? DEFAULT_LIMITS, operationTimeoutMs: OPERATION_TIMEOUT_MS }),
  multiInstance: true,
  persistent: true,
  fault: { inject: () => standalone.kill(), heal: () => standalone.restart(), operationTimeoutMs: OPERATION_TIMEOUT_MS },
});

runStateConformance('redis cluster (3 masters)', {
  open: (scope, o) =>
    openRedisState({
      clusterNodes: cluster.nodes.map((n) => ({ host: n.host, port: n.port })),
      keyPrefix: scope,
      sessionLimits: o?.sessionLimits ?? DEFAULT_LIMITS,
      operationTimeoutMs: OPERATION_TIMEOUT_MS,
    }),
  multiInstance: true,
  persistent: true,
  fault: { inject: () => cluster.kill(), heal: () => cluster.restart(), operationTimeoutMs: OPERATION_TIMEOUT_MS },
});
