import { formatResourcePath } from '@keyhold/protocol';
import type { PolicyEngine } from '@keyhold/policy';
import type { ResourcePolicy, ResourcePolicyDecision } from './resource-policy.js';

/**
 * The KBS's resource policy port backed by the owners' CEL policies: the repository's own policy
 * when one is stored, else the global one, else the built-in default (`ear.status == "affirming"`).
 * Guarantees (from the engine): only a rule result of boolean `true` releases; an evaluation error
 * is a deny with the reason; a repository's release is never decided by another repository's
 * policy. The caller passes claims of a token it verified.
 */
export function celResourcePolicy(engine: PolicyEngine): ResourcePolicy {
  return {
    async evaluate({ claims, plugin, path, query }): Promise<ResourcePolicyDecision> {
      const d = await engine.decideRelease({ tokenClaims: claims, resourcePath: formatResourcePath(path), plugin, query });
      return { allow: d.allow, policyId: d.policyId, version: d.version, scope: d.scope, ...(d.reason !== undefined ? { reason: d.reason } : {}) };
    },
  };
}
