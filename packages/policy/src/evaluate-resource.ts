import { isCelError, type CelInput } from '@bufbuild/cel';
import { parseResourcePath } from '@keyhold/protocol';
import { PolicyError } from './errors.js';
import { metered } from './internal/cel-budget.js';
import { toCelInput } from './internal/cel-input.js';
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

const EMPTY: ReadonlyMap<string, CelInput> = new Map();

function mapField(m: CelInput | undefined, key: string): ReadonlyMap<string, CelInput> {
  const v = m instanceof Map ? (m as Map<string, CelInput>).get(key) : undefined;
  return v instanceof Map ? (v as Map<string, CelInput>) : EMPTY;
}

/** The bindings a resource rule sees (documented on RESOURCE_VARIABLES). The claims are converted once. */
export function resourcePolicyBindings(input: ResourcePolicyInput): Record<string, CelInput> {
  const path = parseResourcePath(input.resourcePath);
  const plugin = input.plugin ?? 'resource';
  const query = toCelInput(input.query ?? {});
  const claims = toCelInput(input.tokenClaims);
  if (!(claims instanceof Map)) throw new PolicyError('POLICY_INPUT_INVALID', 'token claims must be an object');
  const all = new Map(claims as Map<string, CelInput>);
  all.set('plugin', plugin);
  all.set('resource-path', input.resourcePath);
  all.set('query', query);
  const submods = mapField(claims, 'submods');
  const cpu0 = mapField(submods, 'cpu0');
  const ear = new Map<string, CelInput>();
  for (const [k, v] of cpu0) if (k.startsWith('ear.')) ear.set(k.slice(4), v);
  const evidence = mapField(cpu0, 'ear.veraison.annotated-evidence');
  return {
    input: all,
    submods,
    ear,
    evidence,
    init_data_claims: mapField(evidence, 'init_data_claims'),
    plugin,
    resource_path: input.resourcePath,
    repository: path.repository,
    resource_type: path.type,
    resource_tag: path.tag,
    query,
  };
}

/**
 * Decide one release. Guarantees: `allow` is true only when the rule evaluated to the boolean
 * `true` within the policy's budget (`limits`); an evaluation error (a missing claim, a type
 * mismatch) or an exceeded budget is a deny with the reason.
 * It does not verify the token: the caller passes claims of a token it verified.
 * Throws PolicyError POLICY_INPUT_INVALID for oversized input, ProtocolError for a bad path.
 */
export function evaluateResourcePolicy(policy: CompiledResourcePolicy, input: ResourcePolicyInput): ResourceDecision {
  const bindings = resourcePolicyBindings(input);
  const { value: r, exceeded } = metered(policy.limits, () => policy.plan(bindings));
  const base = { policyId: policy.id, version: policy.version };
  // SECURITY: a rule over its budget is stopped and denies, whatever it returned (policy bombs; issue 12).
  if (exceeded !== undefined) return { ...base, allow: false, reason: `policy rule was stopped: ${exceeded}` };
  // SECURITY: fail closed: only a boolean true releases; errors and non-bool results deny.
  if (isCelError(r)) return { ...base, allow: false, reason: `policy rule failed: ${r.message.slice(0, 200)}` };
  if (r !== true) return { ...base, allow: false, reason: r === false ? 'policy rule evaluated to false' : 'policy rule did not give a bool' };
  return { ...base, allow: true };
}
