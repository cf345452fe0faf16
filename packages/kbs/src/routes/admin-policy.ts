import type { Context } from 'hono';
import { base64url } from 'jose';
import { z } from 'zod';
import { isValidResourceSegment } from '@keyhold/protocol';
import { DEFAULT_RESOURCE_POLICY, MAX_POLICY_DOCUMENT_CHARS, PolicyError, type PolicyEngine, type PolicyRef, type StoredPolicy } from '@keyhold/policy';
import type { KbsEnv } from '../app-env.js';
import { KbsError } from '../errors.js';
import { auditEvent } from '../owners/record-event.js';
import { emitEvent } from '../notify/emit-event.js';
import { readJsonBody } from './json-body.js';

// Trustee's admin bodies (PROTOCOL-NOTES §3); `policy` is base64url of the policy text.
const MAX_POLICY_B64_CHARS = Math.ceil((MAX_POLICY_DOCUMENT_CHARS * 4) / 3) + 4;
const AttestationPolicyBody = z.object({ type: z.string().max(32), policy_id: z.string().max(128).optional(), policy: z.string().max(MAX_POLICY_B64_CHARS) }).strict();
const ResourcePolicyBody = z.object({ policy: z.string().max(MAX_POLICY_B64_CHARS), type: z.literal('cel').optional() }).strict();

function engineOf(c: Context<KbsEnv>): PolicyEngine {
  const engine = c.get('deps').owners?.policies;
  if (engine === undefined) throw new KbsError('INVALID_RESOURCE_PATH', 'policy administration is not enabled on this KBS');
  return engine;
}

/** The active attestation policy id (`[policy] attestation_policy`). */
function activeAttestationId(c: Context<KbsEnv>): string {
  return c.get('deps').owners?.attestationPolicyId ?? 'default';
}

function decodePolicyText(b64: string): string {
  let bytes: Uint8Array;
  try {
    // SECURITY: only base64url (Trustee's encoding); padding tolerated, anything else refused.
    bytes = base64url.decode(b64.replace(/=+$/, ''));
  } catch (cause) {
    throw new KbsError('BAD_REQUEST', 'policy must be base64url', { cause });
  }
  const text = new TextDecoder('utf-8', { fatal: false }).decode(bytes);
  if (text.trim() === '') throw new KbsError('BAD_REQUEST', 'policy is empty');
  return text;
}

/** A policy text as a document: a JSON document, or (resource policies only) a bare CEL rule. */
function documentFrom(text: string, kind: 'attestation' | 'resource', defaults: { id: string }): Record<string, unknown> {
  if (!text.trimStart().startsWith('{')) {
    if (kind === 'attestation') throw new KbsError('BAD_REQUEST', 'an attestation policy must be a JSON policy document (see packages/kbs/policies)');
    return { id: defaults.id, type: 'cel', kind, rule: text };
  }
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (cause) {
    throw new KbsError('BAD_REQUEST', 'policy document is not valid JSON', { cause });
  }
  if (doc === null || typeof doc !== 'object' || Array.isArray(doc)) throw new KbsError('BAD_REQUEST', 'policy document must be a JSON object');
  return { id: defaults.id, type: 'cel', kind, ...(doc as Record<string, unknown>) };
}

/** Policy errors at upload: 400 with the rule, line, column and reason the compiler gave. */
function asBadPolicy(err: unknown): unknown {
  if (err instanceof PolicyError && err.code !== 'POLICY_STORE_FAILED') return new KbsError('BAD_REQUEST', err.message, { cause: err });
  return err;
}

function repositoryParam(c: Context<KbsEnv>): string | undefined {
  const repo = c.req.param('repository');
  if (repo === undefined) return undefined;
  // SECURITY: a repository name is a resource path segment, nothing else (path confusion).
  if (!isValidResourceSegment(repo)) throw new KbsError('INVALID_RESOURCE_PATH', 'repository must match ^[A-Za-z0-9_-][A-Za-z0-9_.-]*$');
  return repo;
}

function describe(p: StoredPolicy): Record<string, unknown> {
  return {
    ...(p.ref.kind === 'attestation' ? { id: p.ref.id } : { id: p.document.id, scope: p.ref.repository === undefined ? 'global' : 'repository', repository: p.ref.repository }),
    kind: p.ref.kind,
    version: p.version,
    updatedAt: p.updatedAt,
    ...(p.updatedBy !== undefined ? { updatedBy: p.updatedBy } : {}),
    document: p.document,
    policy: base64url.encode(JSON.stringify(p.document)),
  };
}

async function findStored(engine: PolicyEngine, ref: PolicyRef): Promise<StoredPolicy | undefined> {
  return (await engine.listPolicies()).find((p) =>
    ref.kind === 'attestation' ? p.ref.kind === 'attestation' && p.ref.id === ref.id : p.ref.kind === 'resource' && p.ref.repository === ref.repository,
  );
}

/** POST /kbs/v0/attestation-policy `{"type":"cel","policy_id":..,"policy":"<base64url>"}`. Admin. */
export async function handleSetAttestationPolicy(c: Context<KbsEnv>): Promise<Response> {
  const engine = engineOf(c);
  const body = await readJsonBody(c, AttestationPolicyBody);
  // SECURITY: only CEL is evaluated; a Rego policy is refused instead of being stored unenforced.
  if (body.type === 'rego') throw new KbsError('BAD_REQUEST', 'rego is not supported, use cel (type "cel", see packages/kbs/policies)');
  if (body.type !== 'cel') throw new KbsError('BAD_REQUEST', 'type must be "cel"');
  const doc = documentFrom(decodePolicyText(body.policy), 'attestation', { id: body.policy_id ?? 'default' });
  if (body.policy_id !== undefined && doc['id'] !== body.policy_id) throw new KbsError('BAD_REQUEST', 'policy_id does not match the document id');
  if (doc['kind'] !== 'attestation') throw new KbsError('BAD_REQUEST', 'expected an attestation policy (kind "attestation")');
  const admin = c.get('admin');
  let stored: StoredPolicy;
  try {
    stored = await engine.putAttestationPolicy(doc, admin !== undefined ? { updatedBy: admin.identity } : {});
  } catch (err) {
    throw asBadPolicy(err);
  }
  const id = stored.ref.kind === 'attestation' ? stored.ref.id : '';
  await auditEvent(c, 'admin', { actor: admin?.identity, action: 'attestation-policy.put', policyId: id, policyVersion: stored.version, verdict: 'ok' });
  emitEvent(c, { type: 'policy.changed', policy: `${id}@${stored.version}`, status: 'attestation-policy.put' });
  c.get('log').info({ policy: id, version: stored.version, admin: admin?.identity }, 'attestation policy stored');
  return c.json({ policy_id: id, version: stored.version, active: id === activeAttestationId(c) });
}

/** GET /kbs/v0/attestation-policy — the stored attestation policies and which id is active. Admin. */
export async function handleListAttestationPolicies(c: Context<KbsEnv>): Promise<Response> {
  const engine = engineOf(c);
  const stored = (await engine.listPolicies()).filter((p) => p.ref.kind === 'attestation').map(describe);
  return c.json({ active: activeAttestationId(c), policies: stored });
}

/** GET /kbs/v0/attestation-policy/:id. Admin. The active id with nothing stored is the built-in policy (version 0). */
export async function handleGetAttestationPolicy(c: Context<KbsEnv>): Promise<Response> {
  const engine = engineOf(c);
  const id = c.req.param('id') ?? '';
  const stored = await findStored(engine, { kind: 'attestation', id });
  if (stored !== undefined) return c.json(describe(stored));
  if (id === activeAttestationId(c)) return c.json({ id, kind: 'attestation', version: 0, builtIn: true, description: 'built-in: affirming when the evidence verified and each <tee>_pcrNN reference value matches' });
  throw new KbsError('POLICY_NOT_FOUND', `no attestation policy ${id.slice(0, 128)}`);
}

/** DELETE /kbs/v0/attestation-policy/:id. Admin. */
export async function handleDeleteAttestationPolicy(c: Context<KbsEnv>): Promise<Response> {
  const engine = engineOf(c);
  const id = c.req.param('id') ?? '';
  let existed: boolean;
  try {
    existed = await engine.deletePolicy({ kind: 'attestation', id });
  } catch (err) {
    throw asBadPolicy(err);
  }
  if (!existed) throw new KbsError('POLICY_NOT_FOUND', `no attestation policy ${id.slice(0, 128)}`);
  const admin = c.get('admin');
  await auditEvent(c, 'admin', { actor: admin?.identity, action: 'attestation-policy.delete', policyId: id, verdict: 'ok' });
  emitEvent(c, { type: 'policy.changed', policy: id, status: 'attestation-policy.delete' });
  return c.body(null, 204);
}

/** POST /kbs/v0/resource-policy[/<repository>] `{"policy":"<base64url>"}` (a JSON document or a bare CEL rule). Admin. */
export async function handleSetResourcePolicy(c: Context<KbsEnv>): Promise<Response> {
  const engine = engineOf(c);
  const repository = repositoryParam(c);
  // SECURITY: the scope comes from the path only (which the ACL checked), never from the body, so a
  // repository-limited owner cannot write another repository's or the global policy (cross-tenant).
  const body = await readJsonBody(c, ResourcePolicyBody);
  const doc = documentFrom(decodePolicyText(body.policy), 'resource', { id: repository ?? 'global' });
  if (doc['kind'] !== 'resource') throw new KbsError('BAD_REQUEST', 'expected a resource policy (kind "resource")');
  const admin = c.get('admin');
  let stored: StoredPolicy;
  try {
    stored = await engine.putResourcePolicy(doc, { ...(repository !== undefined ? { repository } : {}), ...(admin !== undefined ? { updatedBy: admin.identity } : {}) });
  } catch (err) {
    throw asBadPolicy(err);
  }
  await auditEvent(c, 'admin', {
    actor: admin?.identity,
    action: repository === undefined ? 'resource-policy.put' : `resource-policy.put:${repository}`,
    policyId: stored.document.id,
    policyVersion: stored.version,
    verdict: 'ok',
  });
  emitEvent(c, { type: 'policy.changed', policy: `${stored.document.id}@${stored.version}`, status: 'resource-policy.put', ...(repository !== undefined ? { repository } : {}) });
  c.get('log').info({ policy: stored.document.id, version: stored.version, repository, admin: admin?.identity }, 'resource policy stored');
  return c.json({ policy_id: stored.document.id, version: stored.version, scope: repository === undefined ? 'global' : 'repository', ...(repository !== undefined ? { repository } : {}) });
}

/** GET /kbs/v0/resource-policy[/<repository>] — the policy in effect there (its own, global or default). Admin. */
export async function handleGetResourcePolicy(c: Context<KbsEnv>): Promise<Response> {
  const engine = engineOf(c);
  const repository = repositoryParam(c);
  if (repository !== undefined) {
    const own = await findStored(engine, { kind: 'resource', repository });
    if (own !== undefined) return c.json(describe(own));
  }
  const global = await findStored(engine, { kind: 'resource' });
  if (global !== undefined) return c.json({ ...describe(global), ...(repository !== undefined ? { inherited: true } : {}) });
  return c.json({ id: DEFAULT_RESOURCE_POLICY.id, kind: 'resource', scope: 'default', version: 0, builtIn: true, document: DEFAULT_RESOURCE_POLICY, policy: base64url.encode(JSON.stringify(DEFAULT_RESOURCE_POLICY)) });
}

/** DELETE /kbs/v0/resource-policy[/<repository>]. Admin. */
export async function handleDeleteResourcePolicy(c: Context<KbsEnv>): Promise<Response> {
  const engine = engineOf(c);
  const repository = repositoryParam(c);
  const existed = await engine.deletePolicy(repository === undefined ? { kind: 'resource' } : { kind: 'resource', repository });
  if (!existed) throw new KbsError('POLICY_NOT_FOUND', `no resource policy stored ${repository === undefined ? 'globally' : `for ${repository}`}`);
  const admin = c.get('admin');
  await auditEvent(c, 'admin', { actor: admin?.identity, action: repository === undefined ? 'resource-policy.delete' : `resource-policy.delete:${repository}`, verdict: 'ok' });
  emitEvent(c, { type: 'policy.changed', status: 'resource-policy.delete', ...(repository !== undefined ? { repository } : {}) });
  return c.body(null, 204);
}

/** GET /kbs/v0/policies — every stored policy, limited to the caller's repositories when its role is. Admin. */
export async function handleListPolicies(c: Context<KbsEnv>): Promise<Response> {
  const engine = engineOf(c);
  const limit = c.get('admin')?.repositories;
  const all = await engine.listPolicies();
  // SECURITY: a repository-limited role sees only its repositories' policies (cross-tenant disclosure).
  const visible = limit === undefined ? all : all.filter((p) => p.ref.kind === 'resource' && p.ref.repository !== undefined && limit.includes(p.ref.repository));
  return c.json({ active_attestation_policy: activeAttestationId(c), policies: visible.map(describe) });
}
