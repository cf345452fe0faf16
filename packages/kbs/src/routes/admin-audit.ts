import type { Context } from 'hono';
import { AUDIT_KINDS, type AuditKind, type AuditQuery } from '@keyhold/audit';
import type { KbsEnv } from '../app-env.js';
import { KbsError } from '../errors.js';

const MAX_RECORDS = 100_000;

/**
 * GET /kbs/v0/audit[?sinceSeq=N&since=RFC3339&node=N&kind=K&limit=N] — audit records, oldest first,
 * as `{"records":[...],"head":{seq,hash}}` (what `keyhold audit --url` reads and verifies). Admin
 * (the `auditor` role may call it).
 */
export async function handleGetAudit(c: Context<KbsEnv>): Promise<Response> {
  const audit = c.get('deps').owners?.audit;
  if (audit === undefined) throw new KbsError('INVALID_RESOURCE_PATH', 'the audit trail is not enabled on this KBS');
  const q = c.req.query();
  const query: { -readonly [K in keyof AuditQuery]: AuditQuery[K] } = { limit: MAX_RECORDS };
  if (q['sinceSeq'] !== undefined) {
    if (!/^[0-9]{1,15}$/.test(q['sinceSeq'])) throw new KbsError('BAD_REQUEST', 'sinceSeq must be a non-negative integer');
    query.sinceSeq = Number(q['sinceSeq']);
  }
  if (q['since'] !== undefined) {
    const t = Date.parse(q['since']);
    if (!/^\d{4}-\d{2}-\d{2}/.test(q['since']) || Number.isNaN(t)) throw new KbsError('BAD_REQUEST', 'since must be an RFC 3339 time');
    query.since = new Date(t);
  }
  if (q['node'] !== undefined) query.node = q['node'].slice(0, 512);
  if (q['kind'] !== undefined) {
    if (!(AUDIT_KINDS as readonly string[]).includes(q['kind'])) throw new KbsError('BAD_REQUEST', `kind must be one of ${AUDIT_KINDS.join(', ')}`);
    query.kind = q['kind'] as AuditKind;
  }
  if (q['limit'] !== undefined) {
    if (!/^[1-9][0-9]{0,5}$/.test(q['limit'])) throw new KbsError('BAD_REQUEST', 'limit must be a positive integer');
    query.limit = Math.min(MAX_RECORDS, Number(q['limit']));
  }
  let records;
  try {
    records = await audit.query(query);
  } catch (cause) {
    throw new KbsError('STORAGE_UNAVAILABLE', 'the audit trail cannot be read', { cause });
  }
  return c.json({ records, ...(audit.head() !== undefined ? { head: audit.head() } : {}) });
}
