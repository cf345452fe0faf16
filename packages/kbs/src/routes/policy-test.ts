import type { Context } from 'hono';
import { z } from 'zod';
import { ProtocolError, parseResourcePath } from '@keyhold/protocol';
import {
  MAX_POLICY_DOCUMENT_CHARS,
  PolicyCompileError,
  PolicyError,
  compileAttestationPolicy,
  compileResourcePolicy,
  evaluateAttestationPolicy,
  evaluateResourcePolicy,
} from '@keyhold/policy';
import type { KbsEnv } from '../app-env.js';
import { KbsError } from '../errors.js';
import { referencesFor } from '../attestation/cel-attestation-policy.js';
import { DEFAULT_CONTINUOUS } from '../continuous/continuous-config.js';
import { withNodeFreshness } from '../continuous/node-freshness.js';
import { effectiveState } from '../continuous/node-lifecycle.js';
import { isNodeId } from '../state/node-record.js';
import type { NodeRecord } from '../state/ports.js';
import { readJsonBody } from './json-body.js';

const Claims = z.record(z.string(), z.unknown());
const PolicyTestBody = z
  .object({
    /** A policy document (object or JSON text), or a bare CEL rule (resource policies only). */
    policy: z.union([z.string().min(1).max(MAX_POLICY_DOCUMENT_CHARS), z.record(z.string(), z.unknown())]),
    kind: z.enum(['attestation', 'resource']),
    /** Resource: the EAR token's claims. Attestation: the verifier's claims (annotated-evidence), or EAR claims they are taken from. */
    claims: Claims.optional(),
    /** Resource only: a node whose record's last verdict gives the claims (instead of `claims`). */
    node: z.string().max(512).optional(),
    resourcePath: z.string().max(1024).optional(),
    query: z.record(z.string().max(256), z.string().max(1024)).optional(),
    /** Attestation: reference values to use instead of the KBS's current ones. */
    reference: z.record(z.string().max(256), z.array(z.string().max(64 * 1024)).max(1024)).optional(),
    tee: z.string().regex(/^[a-z0-9-]{1,32}$/).optional(),
  })
  .strict();
type PolicyTestRequest = z.output<typeof PolicyTestBody>;

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** The document to compile: given as an object, JSON text, or a bare CEL rule (resource). */
function documentOf(body: PolicyTestRequest): Record<string, unknown> {
  let doc: unknown = body.policy;
  if (typeof doc === 'string') {
    if (!doc.trimStart().startsWith('{')) {
      if (body.kind === 'attestation') throw new KbsError('BAD_REQUEST', 'an attestation policy must be a JSON policy document');
      return { id: 'policy-test', type: 'cel', kind: 'resource', rule: doc };
    }
    try {
      doc = JSON.parse(doc);
    } catch (cause) {
      throw new KbsError('BAD_REQUEST', 'policy is not valid JSON', { cause });
    }
  }
  if (!isRecord(doc)) throw new KbsError('BAD_REQUEST', 'policy document must be a JSON object');
  return { id: 'policy-test', type: 'cel', kind: body.kind, ...doc };
}

/** EAR token claims carry the verifier's claims under submods.cpu0["ear.veraison.annotated-evidence"]. */
function verifierClaims(claims: Record<string, unknown>): Record<string, unknown> {
  const submods = claims['submods'];
  const cpu0 = isRecord(submods) ? submods['cpu0'] : undefined;
  const evidence = isRecord(cpu0) ? cpu0['ear.veraison.annotated-evidence'] : undefined;
  return isRecord(evidence) ? evidence : claims;
}

/**
 * The claims a release request from this node would carry, as far as the KBS knows them: the KBS
 * keeps no token or evidence per node (never tokens or secrets; the record stays small), only the
 * last verdict. So these are EAR claims with that verdict's status and policy and the node's id,
 * plus the freshness claims `/resource` adds from the record (node state, seconds since the last
 * attestation) — enough for resource rules on `ear.status`, freshness, the node or the path, not
 * for rules on evidence (PCRs).
 */
function claimsFromNode(node: NodeRecord, nowMs: number, staleAfterMs: number): Record<string, unknown> {
  const v = node.lastVerdict;
  const ear = {
    submods: {
      cpu0: {
        'ear.status': v?.status ?? 'none',
        ...(v?.policy !== undefined ? { 'ear.appraisal-policy-id': v.policy.replace(/@\d+$/, '') } : {}),
        'ear.veraison.annotated-evidence': { node_id: node.nodeId },
      },
    },
  };
  return withNodeFreshness(ear, node, nowMs, staleAfterMs);
}

interface TestClaims {
  readonly claims: Record<string, unknown>;
  /** When the claims were rebuilt from a node record: which, and what the KBS would do before any policy runs. */
  readonly fromNode?: { readonly nodeId: string; readonly state: string; readonly verdict?: NodeRecord['lastVerdict']; readonly claims: Record<string, unknown>; readonly note: string };
}

async function claimsOf(c: Context<KbsEnv>, body: PolicyTestRequest, scoped: boolean): Promise<TestClaims> {
  if (body.node === undefined) {
    if (body.claims === undefined) throw new KbsError('BAD_REQUEST', 'give "claims" or "node"');
    return { claims: body.claims };
  }
  if (body.claims !== undefined) throw new KbsError('BAD_REQUEST', 'give "claims" or "node", not both');
  // SECURITY: only a well-formed node id reaches the state backend (key injection).
  if (!isNodeId(body.node)) throw new KbsError('BAD_REQUEST', 'node must be a node id (64 hex, or ak:<hex>)');
  // SECURITY: node records (verdicts, states) only for roles that may read them; a
  // repository-limited owner learns nothing about nodes through a test (information disclosure).
  if (scoped || c.get('admin')?.allows?.('GET', `/kbs/v0/admin/nodes/${body.node}`) === false) {
    throw new KbsError('ADMIN_FORBIDDEN', 'this role may not read node records');
  }
  if (body.kind !== 'resource') {
    throw new KbsError('BAD_REQUEST', 'an attestation policy needs evidence claims, which the KBS does not keep per node; send "claims" (e.g. from a recent attestation token)');
  }
  const deps = c.get('deps');
  const node = await deps.state.nodes.get(body.node);
  if (node === undefined) throw new KbsError('RESOURCE_NOT_FOUND', 'no record for this node');
  const nowMs = deps.now?.() ?? Date.now();
  const staleAfterMs = deps.continuous?.settings.staleAfterMs ?? DEFAULT_CONTINUOUS.staleAfterMs;
  const claims = claimsFromNode(node, nowMs, staleAfterMs);
  const state = effectiveState(node, nowMs, staleAfterMs);
  const note =
    state === 'banned' || state === 'revoked'
      ? `the node is ${state}: the KBS refuses it before any resource policy runs`
      : 'claims rebuilt from the node record (last verdict status, node id and freshness; no evidence is kept per node)';
  return { claims, fromNode: { nodeId: node.nodeId, state, ...(node.lastVerdict !== undefined ? { verdict: node.lastVerdict } : {}), claims, note } };
}

async function runTest(c: Context<KbsEnv>, onlyRepository: string | undefined): Promise<Response> {
  const body = await readJsonBody(c, PolicyTestBody);
  const limit = c.get('admin')?.repositories;
  const scope = onlyRepository ?? (limit !== undefined ? null : undefined);
  // SECURITY: a repository-limited role tests only resource policies for paths in its own
  // repositories (it must learn nothing about reference values or other owners' paths).
  if (scope === null || (limit !== undefined && scope !== undefined && !limit.includes(scope))) {
    throw new KbsError('ADMIN_FORBIDDEN', 'this role may only test policies of its own repositories');
  }
  if (scope !== undefined && body.kind !== 'resource') throw new KbsError('ADMIN_FORBIDDEN', 'this role may only test resource policies');
  const doc = documentOf(body);
  const { claims, fromNode } = await claimsOf(c, body, scope !== undefined);
  try {
    if (body.kind === 'resource') {
      if (body.resourcePath === undefined) throw new KbsError('BAD_REQUEST', 'a resource policy test needs resourcePath (repository/type/tag)');
      const path = parseResourcePath(body.resourcePath);
      // SECURITY: the repository-scoped form tests only paths under that repository (cross-tenant).
      if (scope !== undefined && path.repository !== scope) throw new KbsError('ADMIN_FORBIDDEN', `resourcePath must be under ${scope}/`);
      const compiled = compileResourcePolicy(doc);
      const d = evaluateResourcePolicy(compiled, { tokenClaims: claims, resourcePath: body.resourcePath, query: body.query ?? {} });
      return c.json({ kind: 'resource', policyId: d.policyId, allow: d.allow, ...(d.reason !== undefined ? { reason: d.reason } : {}), rule: compiled.document.rule, ...(fromNode !== undefined ? { fromNode } : {}) });
    }
    const compiled = compileAttestationPolicy(doc);
    const tee = body.tee ?? 'tpm';
    const input = { claims: verifierClaims(claims), reference: body.reference ?? referencesFor(tee, await c.get('deps').state.referenceValues.snapshot()), tee };
    try {
      const a = evaluateAttestationPolicy(compiled, input);
      return c.json({ kind: 'attestation', policyId: a.policyId, status: a.status, vector: a.vector, rules: compiled.document.rules });
    } catch (err) {
      // As at /attest: a rule that cannot evaluate gives contraindicated, with the reason.
      if (!(err instanceof PolicyError) || err.code !== 'POLICY_EVALUATION_FAILED') throw err;
      const cause = err.cause instanceof Error ? `: ${err.cause.message.slice(0, 200)}` : '';
      return c.json({ kind: 'attestation', policyId: compiled.id, status: 'contraindicated', reason: `${err.message}${cause}`, rules: compiled.document.rules });
    }
  } catch (err) {
    if (err instanceof PolicyCompileError) throw new KbsError('BAD_REQUEST', err.message, { cause: err });
    if (err instanceof PolicyError || err instanceof ProtocolError) throw new KbsError('BAD_REQUEST', err.message, { cause: err });
    throw err;
  }
}

/**
 * POST /kbs/v0/policy-test `{"policy", "kind", "claims" | "node", "resourcePath"?, "query"?, "reference"?, "tee"?}`
 * — compile a policy with the KBS's compiler (same CEL environment and cost bounds) and evaluate it
 * against the claims given, storing nothing. Resource: `{allow, reason?, policyId, rule, fromNode?}`;
 * with `"node"` the claims are rebuilt from that node's record (see claimsFromNode) and `fromNode`
 * shows them, the node's state and a note (a banned node never reaches a resource policy).
 * Attestation: `{status, vector, reason?, policyId, rules}` — the policy's own verdict (at /attest the
 * appraisal's vector can make it worse, never better); reference values default to the KBS's.
 * A policy that does not compile is 400 naming the rule, line and column. Admin.
 */
export function handlePolicyTest(c: Context<KbsEnv>): Promise<Response> {
  return runTest(c, undefined);
}

/** POST /kbs/v0/resource-policy/<repository>/test — the same for resource paths under one repository (owner ACLs can allow it). */
export function handleRepositoryPolicyTest(c: Context<KbsEnv>): Promise<Response> {
  const repository = c.req.param('repository') ?? '';
  try {
    parseResourcePath(`${repository}/t/t`);
  } catch (cause) {
    throw new KbsError('INVALID_RESOURCE_PATH', 'invalid repository', { cause });
  }
  return runTest(c, repository);
}
