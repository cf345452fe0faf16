import type { Context } from 'hono';
import { isValidResourceSegment } from '@keyhold/protocol';
import { POLICY_HISTORY_LIMIT, type PolicyEngine, type PolicyRef, type StoredPolicy } from '@keyhold/policy';
import type { KbsEnv } from '../app-env.js';
import { KbsError } from '../errors.js';

const POLICY_ID = /^[A-Za-z0-9_-][A-Za-z0-9_.-]{0,127}$/;

function engineOf(c: Context<KbsEnv>): PolicyEngine {
  const engine = c.get('deps').owners?.policies;
  if (engine === undefined) throw new KbsError('INVALID_RESOURCE_PATH', 'policy administration is not enabled on this KBS');
  return engine;
}

function repository(value: string): string {
  // SECURITY: a repository name is a resource path segment, nothing else (path/key confusion).
  if (!isValidResourceSegment(value)) throw new KbsError('BAD_REQUEST', 'repository must match ^[A-Za-z0-9_-][A-Za-z0-9_.-]*$');
  return value;
}

/** The slot a query names: `kind=attestation&id=<id>`, or `kind=resource[&repository=<r>]`. */
function refFromQuery(c: Context<KbsEnv>): PolicyRef {
  const q = c.req.query();
  if (q['kind'] === 'attestation') {
    const id = q['id'] ?? '';
    // SECURITY: ids are plain identifiers (nothing else is looked up or echoed).
    if (!POLICY_ID.test(id)) throw new KbsError('BAD_REQUEST', 'id must match ^[A-Za-z0-9_-][A-Za-z0-9_.-]{0,127}$');
    if (q['repository'] !== undefined) throw new KbsError('BAD_REQUEST', 'an attestation policy has no repository');
    return { kind: 'attestation', id };
  }
  if (q['kind'] === 'resource') {
    if (q['id'] !== undefined) throw new KbsError('BAD_REQUEST', 'resource policies are named by repository, not id');
    return q['repository'] === undefined ? { kind: 'resource' } : { kind: 'resource', repository: repository(q['repository']) };
  }
  throw new KbsError('BAD_REQUEST', 'kind must be "attestation" or "resource"');
}

async function versionsOf(c: Context<KbsEnv>, ref: PolicyRef): Promise<Response> {
  const limit = c.get('admin')?.repositories;
  // SECURITY: a repository-limited role sees only its repositories' policies, never an attestation or
  // the global policy (cross-tenant disclosure); the ACL already refuses these paths, this is the
  // route's own check so a broader ACL rule cannot open them.
  if (limit !== undefined && (ref.kind !== 'resource' || ref.repository === undefined || !limit.includes(ref.repository))) {
    throw new KbsError('ADMIN_FORBIDDEN', 'this role may only read its own repositories\u2019 policies');
  }
  const versions: readonly StoredPolicy[] = await engineOf(c).policyHistory(ref, POLICY_HISTORY_LIMIT);
  return c.json({
    versions: versions.map((p) => ({ version: p.version, updatedAt: p.updatedAt, ...(p.updatedBy !== undefined ? { updatedBy: p.updatedBy } : {}), document: p.document })),
  });
}

/**
 * GET /kbs/v0/policy-versions?kind=attestation&id=<id> | ?kind=resource[&repository=<r>] — a slot's
 * recent versions, newest first (at most POLICY_HISTORY_LIMIT, including versions of a policy since
 * deleted): `{"versions":[{version, updatedAt, updatedBy?, document}]}`. Admin.
 */
export function handlePolicyVersions(c: Context<KbsEnv>): Promise<Response> {
  return versionsOf(c, refFromQuery(c));
}

/**
 * GET /kbs/v0/resource-policy/<repository>/versions — the same for one repository's policy, on a path
 * that names the repository, so a repository-limited owner's ACL can allow it.
 */
export function handleRepositoryPolicyVersions(c: Context<KbsEnv>): Promise<Response> {
  return versionsOf(c, { kind: 'resource', repository: repository(c.req.param('repository') ?? '') });
}
