import { formatResourcePath, parseResourcePath, ProtocolError, type ResourcePath } from '@keyhold/protocol';
import { KbsError } from '../errors.js';
import { SESSION_COOKIE } from '../session/cookie.js';
import { sessionIdOf } from '../session/new-session.js';
import { claimAt, TEE_PUBKEY_PATH } from '../token/ear-claims.js';
import { wrapSecret } from '../release/wrap-secret.js';
import type { FlowAnswer, FlowExchange, ResourceExchange } from '../hot-path/flow-exchange.js';
import { appraisalReasonOf } from '../attestation/appraisal-reason.js';
import { assertNodeNotRevoked } from '../attestation/tpm/node-revocation.js';
import { auditEvent } from '../owners/record-event.js';
import { nodeOfClaims } from '../owners/client-address.js';
import { withNodeFreshness } from '../continuous/node-freshness.js';
import { DEFAULT_CONTINUOUS } from '../continuous/continuous-config.js';
import { emitEvent } from '../notify/emit-event.js';

/** The resource path of a `/kbs/v0/resource/<repo>/<type>/<tag>` request, validated. */
export function resourcePathOf(p: string): ResourcePath {
  try {
    return parseResourcePath(p);
  } catch (err) {
    if (err instanceof ProtocolError) throw new KbsError('INVALID_RESOURCE_PATH', err.message, { cause: err });
    throw err;
  }
}

/** Claims of the caller's attestation: from an attested session cookie or a bearer EAR token. */
export async function attestationClaims(c: Pick<FlowExchange, 'deps' | 'header' | 'cookie'>): Promise<Record<string, unknown>> {
  const deps = c.deps;
  const auth = c.header('authorization');
  if (auth !== undefined) {
    const m = /^Bearer\s+([A-Za-z0-9_.-]+)$/i.exec(auth.trim());
    if (m === null) throw new KbsError('TOKEN_INVALID', 'Authorization must be "Bearer <attestation token>"');
    return (await deps.signer.verify(m[1]!)) as Record<string, unknown>;
  }
  const cookie = c.cookie(SESSION_COOKIE);
  if (cookie === undefined) throw new KbsError('TOKEN_MISSING', 'no attested session cookie and no bearer token');
  const sessionId = sessionIdOf(cookie);
  if (sessionId === undefined) throw new KbsError('SESSION_MISSING', 'unknown session');
  const session = await deps.state.sessions.get(sessionId);
  // SECURITY: a session that has only been challenged (not attested) opens nothing (auth bypass).
  if (session.attested === undefined) throw new KbsError('SESSION_NOT_ATTESTED', 'session has not attested');
  return session.attested.claims;
}

/** GET /kbs/v0/resource/<repo>/<type>/<tag>[?version=N] — release a secret, JWE-wrapped to the tee key. */
export async function handleGetResource(c: ResourceExchange): Promise<FlowAnswer> {
  const deps = c.deps;
  const path = resourcePathOf(c.resourcePath);
  const claims = await attestationClaims(c);
  // Refuses revoked and banned nodes (every replica reads the same record); the record gives freshness.
  const nodeRecord = await assertNodeNotRevoked(claims, deps.state.nodes);
  const query = c.query;
  let version: number | undefined;
  if (query['version'] !== undefined) {
    if (!/^[1-9][0-9]{0,8}$/.test(query['version'])) throw new KbsError('BAD_REQUEST', 'version must be a positive integer');
    version = Number(query['version']);
  }
  const staleAfterMs = deps.continuous?.settings.staleAfterMs ?? DEFAULT_CONTINUOUS.staleAfterMs;
  const policyClaims = withNodeFreshness(claims, nodeRecord, deps.now?.() ?? Date.now(), staleAfterMs);
  const decision = await deps.resourcePolicy.evaluate({ claims: policyClaims, plugin: 'resource', path, query });
  const pathText = formatResourcePath(path);
  const node = nodeOfClaims(claims);
  const audited = { node, resourcePath: pathText, policyId: decision.policyId, policyVersion: decision.version ?? 0 };
  const evented = { ...(node !== undefined ? { node } : {}), repository: path.repository, resource: pathText, policy: `${decision.policyId}@${decision.version ?? 0}` };
  if (!decision.allow) {
    deps.metrics?.count('deny', path.repository);
    deps.owners?.metrics?.policyDenial({ kind: 'resource', scope: decision.scope ?? 'default' });
    await auditEvent(c, 'deny', { ...audited, verdict: 'deny', reason: decision.reason });
    emitEvent(c, { type: 'denial', ...evented, ...(decision.reason !== undefined ? { reason: decision.reason } : {}) });
    if (deps.logger.isLevelEnabled('info')) c.log.info({ resource: pathText, policy: decision.policyId, reason: decision.reason }, 'release denied');
    // The first failed appraisal step (measured boot, IMA) is named whatever policy engine decided.
    const why = appraisalReasonOf(claims);
    const attestationWhy = why !== undefined && decision.reason?.includes(why) !== true ? `; attestation: ${why}` : '';
    throw new KbsError('POLICY_DENY', `access to ${pathText} denied by policy ${decision.policyId}@${decision.version ?? 0}${decision.reason !== undefined ? ` (${decision.reason})` : ''}${attestationWhy}`);
  }
  const secret = await deps.resources.get(path, version);
  if (secret === undefined) throw new KbsError('RESOURCE_NOT_FOUND', `resource ${pathText}${version !== undefined ? ` version ${version}` : ''} not found`);
  const jwe = await wrapSecret(secret, claimAt(claims, TEE_PUBKEY_PATH));
  // Recorded before the secret leaves: if the trail cannot be written, nothing is released.
  await auditEvent(c, 'release', { ...audited, verdict: 'allow' });
  emitEvent(c, { type: 'release', ...evented });
  deps.metrics?.count('release', path.repository);
  deps.owners?.metrics?.release(path.repository);
  if (deps.logger.isLevelEnabled('info')) c.log.info({ resource: pathText, policy: decision.policyId }, 'released');
  return { body: jwe };
}
