import path from 'node:path';
import { RedisAuditSink } from '../../audit/redis-audit-sink.js';
import { RedisPolicyStore } from '../../policy/redis-policy-store.js';
import { readCaDirectory } from '../embedded/embedded-ek-ca.js';
import type { KbsState, SessionLimits } from '../ports.js';
import { checkSessionLimits } from '../session-record.js';
import { registerStateImporter } from '../state-importer.js';
import { connectRedis, RedisContext, type RedisConnectionOptions } from './redis-connection.js';
import { RedisEkAllowlist } from './redis-ek-allowlist.js';
import { RedisEkCa } from './redis-ek-ca.js';
import { RedisImaCheckpoints } from './redis-ima-checkpoints.js';
import { RedisImporter } from './redis-import.js';
import { RedisNodeState } from './redis-nodes.js';
import { RedisRateLimits } from './redis-rate-limits.js';
import { RedisReferenceValues } from './redis-reference-values.js';
import { RedisSessionState } from './redis-sessions.js';
import { RedisEvents } from './redis-events.js';
import { RedisNodeCa } from './redis-node-ca.js';
import { checkRetention, DEFAULT_EVENT_RETENTION } from '../event-record.js';

export interface RedisStateOptions extends RedisConnectionOptions {
  readonly sessionLimits: SessionLimits;
  /** Lifetime of an IMA checkpoint (default 7 days). */
  readonly imaCheckpointTtlMs?: number;
  /** `[tpm] ek_ca_dir`: this replica's configured CA directory, read at open (uploads live in Redis). */
  readonly ekCaDir?: string;
  /** `ekCaDir` was configured explicitly: it must exist (STATE_UNAVAILABLE otherwise). Default false. */
  readonly ekCaDirRequired?: boolean;
  /** Milliseconds clock for session expiry (tests). */
  readonly now?: () => number;
  /** Events retained (at least the newest N; Redis trims approximately). Default 10 000. */
  readonly eventRetention?: number;
}

export interface RedisKbsState extends KbsState {
  readonly backend: 'redis';
  readonly keyPrefix: string;
}

/**
 * The state of any number of KBS replicas sharing one Redis (standalone or Cluster). Every
 * mutation is one script (or one command) on one hash slot; see each store for its keys. The
 * client belongs to the state: `close()` quits it. Opening does not wait for Redis: while it is
 * unreachable each operation fails with STATE_UNAVAILABLE within `operationTimeoutMs`.
 */
export async function openRedisState(options: RedisStateOptions): Promise<RedisKbsState> {
  const limits = checkSessionLimits(options.sessionLimits);
  const eventRetention = checkRetention(options.eventRetention ?? DEFAULT_EVENT_RETENTION);
  if (options.ekCaDir !== undefined && !path.isAbsolute(options.ekCaDir)) throw new TypeError('ekCaDir must be an absolute path');
  const configuredCa = options.ekCaDir === undefined ? new Map() : await readCaDirectory(options.ekCaDir, { required: options.ekCaDirRequired === true });
  const storeOptions = {
    ...(options.keyPrefix !== undefined ? { keyPrefix: options.keyPrefix } : {}),
    ...(options.operationTimeoutMs !== undefined ? { operationTimeoutMs: options.operationTimeoutMs } : {}),
  };
  const client = await connectRedis(options);
  try {
    const ctx = new RedisContext(client, storeOptions);
    const audit = new RedisAuditSink(client, storeOptions);
    const ekCa = new RedisEkCa(ctx, configuredCa);
    const importer = new RedisImporter(ctx, audit);
    const events = new RedisEvents(ctx, eventRetention);
    let closed = false;
    const state: RedisKbsState = {
      backend: 'redis',
      keyPrefix: ctx.prefix,
      sessions: new RedisSessionState(ctx, limits, options.now),
      nodes: new RedisNodeState(ctx),
      referenceValues: new RedisReferenceValues(ctx),
      ekAllowlist: new RedisEkAllowlist(ctx),
      ekCa,
      imaCheckpoints: new RedisImaCheckpoints(ctx, options.imaCheckpointTtlMs),
      rateLimits: new RedisRateLimits(ctx),
      events,
      leases: events,
      nodeCa: new RedisNodeCa(ctx),
      audit,
      policies: new RedisPolicyStore(client, storeOptions),
      async ping() {
        await ctx.op(() => client.ping());
      },
      async close() {
        if (closed) return;
        closed = true;
        events.close();
        // QUIT waits for the server; never longer than one operation deadline.
        await Promise.race([client.quit().catch(() => undefined), new Promise((r) => setTimeout(r, ctx.timeoutMs).unref())]);
        client.disconnect();
      },
    };
    registerStateImporter(state, {
      importPolicies: (p) => importer.importPolicies(p),
      importAudit: (r) => importer.importAudit(r),
      uploadedCaCount: () => ekCa.uploadCount(),
    });
    return state;
  } catch (err) {
    client.disconnect();
    throw err;
  }
}
