import { createAuditLog, type AuditLog } from '../audit/audit-log.js';
import { RedisAuditSink, createRedisAuditLog } from '../audit/redis-audit-sink.js';
import type { KbsState } from './ports.js';

/**
 * The audit log over a state's trail: on Redis the chain is built at the shared head (every
 * replica appends to one chain); on embedded in process, over the file sink.
 */
export async function openStateAuditLog(state: KbsState, options: { readonly now?: () => Date } = {}): Promise<AuditLog> {
  const now = options.now === undefined ? {} : { now: options.now };
  if (state.audit instanceof RedisAuditSink) return createRedisAuditLog({ sink: state.audit, ...now });
  return createAuditLog({ sink: state.audit, ...now });
}
