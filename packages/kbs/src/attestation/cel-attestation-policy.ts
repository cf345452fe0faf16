import { PolicyError, type PolicyEngine, type PolicyStore } from '@keyhold/policy';
import type { ReferenceSnapshot } from '../state/ports.js';
import { emptyVector, statusOfVector, type EarStatus, type TrustworthinessVector } from '../token/ear-claims.js';
import { comparePinnedPcrs, defaultAttestationPolicy, pcrMismatchReason, type AttestationPolicy, type AttestationVerdict } from './attestation-policy.js';
import type { TeeAppraisal } from './tee-appraiser.js';

export interface CelAttestationPolicyOptions {
  readonly engine: PolicyEngine;
  /**
   * The engine's store, to look up the active policy by its slot (one read) rather than listing
   * every stored policy on each attestation. Without it, the engine's list is used.
   */
  readonly store?: Pick<PolicyStore, 'get'>;
  /** The id of the attestation policy the KBS appraises with (`[policy] attestation_policy`, default `default`). */
  readonly policyId?: string;
  /** Used while no policy is stored under `policyId` (version 0). Default: the built-in policy. */
  readonly fallback?: AttestationPolicy;
}

const RANK: Record<EarStatus, number> = { affirming: 0, warning: 1, none: 2, contraindicated: 3 };

/**
 * The KBS's attestation policy port backed by the owner's stored CEL policy.
 *
 * - While no policy is stored under the active id, the built-in policy decides (it honours the
 *   `<tee>_pcrNN` reference values and the appraisal steps' vector) and the verdict names
 *   `<id>` version 0.
 * - A stored policy sees `claims` in annotated-evidence shape (`claims.tpm.pcr07`,
 *   `claims.init_data_claims`, `claims.node_id`, ...), `reference` (every reference value, and each
 *   `<tee>_NAME` also as `NAME` unless that name is set itself, so `reference.pcr07` works) and `tee`.
 * - Guarantee: an owner's policy can make a verdict stricter but never hide a failed appraisal step:
 *   the vector is, per component, the worse of the policy's and the appraisal's, and the status the
 *   worse of the policy's and the one the appraisal's vector implies.
 * - A policy that fails to evaluate gives `contraindicated` with the reason (fail closed), so no
 *   release follows and the client is told why.
 */
export function celAttestationPolicy(options: CelAttestationPolicyOptions): AttestationPolicy {
  const policyId = options.policyId ?? 'default';
  const fallback = options.fallback ?? defaultAttestationPolicy;
  return {
    async evaluate({ tee, appraisal, references }): Promise<AttestationVerdict> {
      const stored =
        options.store !== undefined
          ? await options.store.get({ kind: 'attestation', id: policyId })
          : (await options.engine.listPolicies()).find((p) => p.ref.kind === 'attestation' && p.ref.id === policyId);
      if (stored === undefined) {
        const v = await fallback.evaluate({ tee, appraisal, references });
        return { ...v, policyId, version: 0 };
      }
      const appraised = { ...emptyVector(), ...appraisal.vector };
      let result;
      try {
        result = await options.engine.appraise({ policyId, tee, claims: claimsFor(tee, appraisal), reference: referencesFor(tee, references) });
      } catch (err) {
        // SECURITY: a policy that cannot evaluate (bug, missing claim) never yields a passing verdict (fail closed).
        const why = err instanceof PolicyError ? err.message : 'attestation policy failed';
        return { status: 'contraindicated', vector: appraised, policyId, version: stored.version, reason: why.slice(0, 300) };
      }
      const vector = worseVector(appraised, result.vector);
      const byAppraisal = statusOfVector(appraised);
      // SECURITY: a permissive owner policy cannot turn a failed appraisal step (e.g. IMA) into a pass.
      const status = RANK[byAppraisal] > RANK[result.status] && byAppraisal !== 'none' ? byAppraisal : result.status;
      const verdict: AttestationVerdict = { status, vector, policyId: result.policyId, version: result.version };
      if (status !== 'affirming') {
        // Name the pinned PCRs that differ (names only), as the built-in policy does, whatever rule decided.
        const pcrs = pcrMismatchReason(tee, comparePinnedPcrs(tee, appraisal.teeClaims, references).mismatched);
        verdict.reason = `${reasonOf(result.policyId, result.version, status, vector)}${pcrs !== undefined ? `: ${pcrs}` : ''}`;
      }
      return verdict;
    },
  };
}

function claimsFor(tee: string, appraisal: TeeAppraisal): Record<string, unknown> {
  return { ...(appraisal.extra ?? {}), [tee]: appraisal.teeClaims };
}

/** Every reference value, and each `<tee>_NAME` also as `NAME` unless that name is set itself (what a stored policy sees). */
export function referencesFor(tee: string, references: ReferenceSnapshot): Record<string, readonly string[]> {
  const all = references.all();
  const out: Record<string, readonly string[]> = { ...all };
  const prefix = `${tee}_`;
  for (const [k, v] of Object.entries(all)) {
    if (k.startsWith(prefix) && !(k.slice(prefix.length) in all)) out[k.slice(prefix.length)] = v;
  }
  return out;
}

function tier(v: number): number {
  return v >= 96 ? 3 : v >= 32 ? 2 : v >= 2 ? 1 : 0;
}

function worseVector(a: TrustworthinessVector, b: Readonly<Record<string, number>>): TrustworthinessVector {
  const out = { ...a };
  for (const k of Object.keys(out) as (keyof TrustworthinessVector)[]) {
    const x = out[k];
    const y = b[k] ?? 0;
    out[k] = tier(y) > tier(x) || (tier(y) === tier(x) && y > x) ? y : x;
  }
  return out;
}

function reasonOf(id: string, version: number, status: EarStatus, vector: TrustworthinessVector): string {
  const bad = Object.entries(vector).find(([, v]) => v >= 32);
  return `attestation policy ${id}@${version} gave ${status}${bad !== undefined ? ` (${bad[0]} = ${bad[1]})` : ''}`;
}
