import type { KbsConfig } from '../config.js';
import { openEmbeddedState, openRedisState } from '../state/index.js';
import type { KbsState } from '../state/ports.js';
import type { StateRedisConfig } from './state-config.js';

export interface OpenedState {
  readonly state: KbsState;
  /** Bytes of a torn last audit line the embedded sink cut at open (0 for Redis). */
  readonly auditTruncatedTornBytes: number;
  /** Stale temp files of interrupted writes removed at open (embedded). */
  readonly removedTempFiles: readonly string[];
}

/**
 * Open the configured state backend. Embedded takes the data dir's lock: a second process on the
 * same dir gets StateError('STATE_LOCKED') naming the holder's pid. Redis opens its own client and
 * does not wait for the server (an outage answers 503 per request until it returns).
 */
export async function openConfiguredState(config: KbsConfig): Promise<OpenedState> {
  const sessionLimits = { maxSessions: config.maxSessions, maxSessionBytes: config.state.maxSessionBytes };
  const id = config.tpmIdentity;
  if (config.state.backend === 'redis') {
    const state = await openRedisState({
      ...redisConnection(config.state.redis!),
      sessionLimits,
      ekCaDir: id.ekCaDir,
      ekCaDirRequired: !id.ekCaDirIsDefault,
      eventRetention: config.continuous.eventRetention,
    });
    return { state, auditTruncatedTornBytes: 0, removedTempFiles: [] };
  }
  const state = await openEmbeddedState({
    dataDir: config.dataDir,
    sessionLimits,
    imaCheckpointMaxNodes: config.tpm.measuredBoot.imaCheckpointMaxNodes,
    ekCaDir: id.ekCaDir,
    ekCaDirRequired: !id.ekCaDirIsDefault,
    ekAllowlistDir: id.ekAllowlistDir,
    enrolmentDir: id.enrolmentDir,
    auditFile: config.owners.auditFile ?? null,
    eventRetention: config.continuous.eventRetention,
  });
  return { state, auditTruncatedTornBytes: state.auditTruncatedTornBytes, removedTempFiles: state.removedTempFiles };
}

/** The connection options of `openRedisState` for a configured Redis. */
export function redisConnection(r: StateRedisConfig) {
  return {
    ...(r.url !== undefined ? { url: r.url } : { clusterNodes: r.clusterNodes ?? [] }),
    ...(r.keyPrefix !== undefined ? { keyPrefix: r.keyPrefix } : {}),
    ...(r.username !== undefined ? { username: r.username } : {}),
    ...(r.passwordFile !== undefined ? { passwordFile: r.passwordFile } : {}),
    ...(r.tlsCaFile !== undefined ? { tlsCaFile: r.tlsCaFile } : {}),
    ...(r.commandTimeoutMs !== undefined ? { commandTimeoutMs: r.commandTimeoutMs } : {}),
    ...(r.operationTimeoutMs !== undefined ? { operationTimeoutMs: r.operationTimeoutMs } : {}),
  };
}
