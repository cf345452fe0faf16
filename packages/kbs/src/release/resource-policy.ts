import type { ResourcePath } from '@keyhold/protocol';
import { claimAt, EAR_STATUS_PATH } from '../token/ear-claims.js';
import { appraisalReasonOf } from '../attestation/appraisal-reason.js';

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
  /** Which policy slot decided: the repository's own, the global one, or the built-in default. */
  scope?: 'repository' | 'global' | 'default';
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
      const why = appraisalReasonOf(claims);
      return { allow: false, policyId: 'default-affirming', reason: `ear.status is ${String(status)}${why !== undefined ? `: ${why}` : ''}` };
    }
    return { allow: true, policyId: 'default-affirming' };
  },
};
