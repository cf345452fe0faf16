import { isCelError, type CelInput } from '@bufbuild/cel';
import { parseResourcePath } from '@keyhold/protocol';
import { ownField, toCelInput } from './internal/cel-input.js';
import type { CompiledResourcePolicy } from './compile.js';

export interface ResourcePolicyInput {
  /** The claims of the verified attestation token (EAR): `submods`, `iat`, `exp`, ... */
  readonly tokenClaims: Readonly<Record<string, unknown>>;
  /** `repository/type/tag`, without a leading slash. */
  readonly resourcePath: string;
  /** The KBS plugin serving the request; `"resource"` for `/kbs/v0/resource/...`. */
  readonly plugin?: string;
  readonly query?: Readonly<Record<string, string>>;
}

export interface ResourceDecision {
  readonly allow: boolean;
  readonly policyId: string;
  readonly version: number;
  /** Why a release was denied: the rule gave false, or it failed to evaluate (with CEL's message). */
  readonly reason?: string;
}

function record(v: unknown): Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : {};
}

/** The bindings a resource rule sees (documented on RESOURCE_VARIABLES). */
export function resourcePolicyBindings(input: ResourcePolicyInput): Record<string, CelInput> {
  const path = parseResourcePath(input.resourcePath);
  const plugin = input.plugin ?? 'resource';
  const query = input.query ?? {};
  const submods = record(ownField(input.tokenClaims, 'submods'));
  const cpu0 = record(ownField(submods, 'cpu0'));
  const ear: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(cpu0)) if (k.startsWith('ear.')) ear[k.slice(4)] = v;
  const evidence = record(ownField(cpu0, 'ear.veraison.annotated-evidence'));
  const initDataClaims = record(ownField(evidence, 'init_data_claims'));
  return {
    input: toCelInput({ ...input.tokenClaims, plugin, 'resource-path': input.resourcePath, query }),
    submods: toCelInput(submods),
    ear: toCelInput(ear),
    evidence: toCelInput(evidence),
    init_data_claims: toCelInput(initDataClaims),
    plugin,
    resource_path: input.resourcePath,
    repository: path.repository,
    resource_type: path.type,
    resource_tag: path.tag,
    query: toCelInput(query),
  };
}

/**
 * Decide one release. Guarantees: `allow` is true only when the rule evaluated to the boolean
 * `true`; an evaluation error (a missing claim, a type mismatch) is a deny with the reason.
 * It does not verify the token: the caller passes claims of a token it verified.
 * Throws PolicyError POLICY_INPUT_INVALID for oversized input, ProtocolError for a bad path.
 */
export function evaluateResourcePolicy(policy: CompiledResourcePolicy, input: ResourcePolicyInput): ResourceDecision {
  const r = policy.plan(resourcePolicyBindings(input));
  const base = { policyId: policy.id, version: policy.version };
  // SECURITY: fail closed: only a boolean true releases; errors and non-bool results deny.
  if (isCelError(r)) return { ...base, allow: false, reason: `policy rule failed: ${r.message.slice(0, 200)}` };
  if (r !== true) return { ...base, allow: false, reason: r === false ? 'policy rule evaluated to false' : 'policy rule did not give a bool' };
  return { ...base, allow: true };
}
