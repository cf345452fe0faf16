import type { NodeLifecycle, NodeRecord } from '../state/ports.js';
import { effectiveState, lastAttestedAgeS } from './node-lifecycle.js';

/** Members added to the annotated evidence a resource policy sees (never to the token itself). */
export const LAST_ATTESTED_AGE_CLAIM = 'last_attested_age_s';
export const NODE_STATE_CLAIM = 'node_state';

/**
 * The claims a resource policy evaluates: the token's claims plus, when the token names a node
 * with a record, `evidence.last_attested_age_s` (whole seconds since the node's last affirming
 * attestation, read from the node record at release time, on any replica) and `evidence.node_state`
 * (`active` or `stale`). A policy can require freshness, e.g.
 * `ear.status == "affirming" && evidence.last_attested_age_s < 300`; for a token without a node
 * the member is absent and such a rule fails closed (a missing key is a CEL error: deny).
 * The token's own claims object is not modified.
 */
export function withNodeFreshness(claims: Record<string, unknown>, record: NodeRecord | undefined, nowMs: number, staleAfterMs: number): Record<string, unknown> {
  if (record === undefined) return claims;
  const submods = claims['submods'];
  const cpu0 = isObject(submods) ? submods['cpu0'] : undefined;
  const evidence = isObject(cpu0) ? cpu0['ear.veraison.annotated-evidence'] : undefined;
  if (!isObject(submods) || !isObject(cpu0) || !isObject(evidence)) return claims;
  const age = lastAttestedAgeS(record, nowMs);
  const state: NodeLifecycle = effectiveState(record, nowMs, staleAfterMs);
  const annotated = { ...evidence, ...(age !== undefined ? { [LAST_ATTESTED_AGE_CLAIM]: age } : {}), [NODE_STATE_CLAIM]: state };
  return { ...claims, submods: { ...submods, cpu0: { ...cpu0, 'ear.veraison.annotated-evidence': annotated } } };
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
