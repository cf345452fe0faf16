import type { Context } from 'hono';
import { MAX_AUDIT_FIELD_CHARS, type AuditFields, type AuditKind } from '@keyhold/audit';
import type { KbsEnv } from '../app-env.js';
import { KbsError } from '../errors.js';
import { depsOf, requestScope, type ScopeSource } from '../request-scope.js';

/**
 * Append one audit record for this request, with its request id and client address. Fail closed:
 * when the trail cannot be written the request is refused (503) rather than served unrecorded.
 * Callers pass only allow-listed fields (the audit format has no free-form field), so secret
 * values, tokens and evidence cannot reach the log.
 */
export async function auditEvent(source: ScopeSource, kind: AuditKind, fields: AuditFields): Promise<void> {
  const audit = depsOf(source).owners?.audit;
  if (audit === undefined) return;
  if (kind === 'admin') adminAudited.add(source);
  const scope = requestScope(source);
  const bounded: Record<string, string | number> = {};
  for (const [k, v] of Object.entries(fields) as [string, string | number | undefined][]) {
    if (v === undefined) continue;
    bounded[k] = typeof v === 'string' ? v.slice(0, MAX_AUDIT_FIELD_CHARS) : v;
  }
  try {
    await audit.record(kind, { ...bounded, requestId: scope.requestId, client: scope.clientAddress() });
  } catch (cause) {
    scope.log.error({ code: (cause as { code?: string }).code, kind }, 'audit record could not be stored');
    throw new KbsError('STORAGE_UNAVAILABLE', 'the audit trail cannot be written; request refused', { cause });
  }
}

const adminAudited = new WeakSet<object>();

/** Whether a handler already wrote this admin request's record (else the admin middleware writes a generic one). */
export function wasAdminAudited(c: Context<KbsEnv>): boolean {
  return adminAudited.has(c);
}

/** The stable code of an error, for audit reasons (never its message when it may carry input). */
export function errorCode(err: unknown): string {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : 'INTERNAL';
}
