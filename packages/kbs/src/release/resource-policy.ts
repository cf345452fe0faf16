import type { ResourcePath } from '@keyhold/protocol';
import { claimAt, EAR_STATUS_PATH } from '../token/ear-claims.js';

export interface ResourcePolicyInput {
  /** Claims of the verified attestation token. */
  claims: Record<string, unknown>;
  plugin: 'resource';
  path: ResourcePath;
  query: Record<string, string>;
}

export interface ResourcePolicyDecision {
  allow: boolean;
  policyId: string;
  version?: number;
  reason?: string;
}

/** Decides each release. */
export interface ResourcePolicy {
  evaluate(input: ResourcePolicyInput): Promise<ResourcePolicyDecision>;
}

/** The built-in default: a release needs `ear.status == "affirming"`. */
export const affirmingResourcePolicy: ResourcePolicy = {
  async evaluate({ claims }) {
    const status = claimAt(claims, EAR_STATUS_PATH);
    // SECURITY: nothing is released to a node whose attestation was not affirming.
    if (status !== 'affirming') {
      const why = appraisalReason(claims);
      return { allow: false, policyId: 'default-affirming', reason: `ear.status is ${String(status)}${why !== undefined ? `: ${why}` : ''}` };
    }
    return { allow: true, policyId: 'default-affirming' };
  },
};

/**
 * The first reason an appraisal step recorded: a member of `annotated-evidence.<tee>` that is an
 * object with `ok: false` and a string `reason` (e.g. `tpm.measured_boot`, `tpm.ima`).
 */
function appraisalReason(claims: Record<string, unknown>): string | undefined {
  const evidence = claimAt(claims, ['submods', 'cpu0', 'ear.veraison.annotated-evidence']);
  if (evidence === null || typeof evidence !== 'object') return undefined;
  for (const tee of Object.values(evidence as Record<string, unknown>)) {
    if (tee === null || typeof tee !== 'object') continue;
    for (const member of Object.values(tee as Record<string, unknown>)) {
      const m = member as { ok?: unknown; reason?: unknown } | null;
      if (m !== null && typeof m === 'object' && m.ok === false && typeof m.reason === 'string') return m.reason;
    }
  }
  return undefined;
}
