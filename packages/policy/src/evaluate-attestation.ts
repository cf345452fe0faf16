import { isCelError, type CelInput, type CelValue } from '@bufbuild/cel';
import { PolicyError } from './errors.js';
import { budgetExceeded, metered } from './internal/cel-budget.js';
import { toCelInput } from './internal/cel-input.js';
import { EAR_STATUSES, TRUSTWORTHINESS_COMPONENTS, type EarStatus, type TrustworthinessComponent } from './document.js';
import type { CompiledAttestationPolicy } from './compile.js';

export interface AttestationPolicyInput {
  /** The verifier's claims (only claims from verified evidence; the caller guarantees this). */
  readonly claims: Readonly<Record<string, unknown>>;
  /** Reference values: name → accepted values. */
  readonly reference?: Readonly<Record<string, readonly unknown[]>>;
  /** The tee the evidence came from, e.g. "tpm". */
  readonly tee?: string;
}

export type TrustworthinessVector = Readonly<Record<TrustworthinessComponent, number>>;

export interface AttestationAppraisal {
  readonly status: EarStatus;
  readonly vector: TrustworthinessVector;
  readonly policyId: string;
  readonly version: number;
}

/** AR4SI claim values are signed 8-bit integers (draft-ietf-rats-ar4si §2.3). */
function vectorValue(v: CelValue): number | undefined {
  const n = typeof v === 'bigint' ? Number(v) : typeof v === 'number' && Number.isInteger(v) ? v : undefined;
  return n !== undefined && n >= -128 && n <= 127 ? n : undefined;
}

/**
 * Run an attestation policy: each vector rule (missing ones give 0, "no claim"), then the status
 * rule with the computed `vector` bound. Guarantees: the status is one of the four EAR values and
 * each component an AR4SI integer in -128..127, otherwise POLICY_EVALUATION_FAILED is thrown (a
 * failing rule never yields a default status), and the whole evaluation stays within the policy's
 * budget (`limits`: cost units and time), else POLICY_EVALUATION_FAILED says which rule was stopped.
 * It does not check the evidence itself: the caller passes claims only from evidence the verifier accepted.
 */
export function evaluateAttestationPolicy(policy: CompiledAttestationPolicy, input: AttestationPolicyInput): AttestationAppraisal {
  const bindings: Record<string, CelInput> = {
    claims: toCelInput(input.claims),
    reference: toCelInput(input.reference ?? {}),
    tee: input.tee ?? '',
  };
  // All rules of one evaluation share one budget (policy.limits); the first rule that exceeds it
  // stops the evaluation (fail closed).
  return metered(policy.limits, () => evaluateRules(policy, bindings)).value;
}

function stopped(policy: CompiledAttestationPolicy, rule: string): PolicyError | undefined {
  const why = budgetExceeded();
  // SECURITY: a policy over its budget fails closed; no default status replaces it (policy bombs; issue 12).
  return why === undefined ? undefined : new PolicyError('POLICY_EVALUATION_FAILED', `attestation policy ${policy.id} was stopped in rule ${rule}: ${why}`);
}

function evaluateRules(policy: CompiledAttestationPolicy, bindings: Record<string, CelInput>): AttestationAppraisal {
  const vector = {} as Record<TrustworthinessComponent, number>;
  for (const c of TRUSTWORTHINESS_COMPONENTS) {
    const p = policy.plans.vector.get(c);
    if (p === undefined) {
      vector[c] = 0;
      continue;
    }
    const r = p(bindings);
    const over = stopped(policy, `vector.${c}`);
    if (over !== undefined) throw over;
    if (isCelError(r)) throw new PolicyError('POLICY_EVALUATION_FAILED', `attestation policy ${policy.id} rule vector.${c} failed to evaluate`, { cause: r });
    const n = vectorValue(r);
    // SECURITY: a component outside AR4SI's range is an error, not clamped (fail closed on policy bugs).
    if (n === undefined) throw new PolicyError('POLICY_EVALUATION_FAILED', `attestation policy ${policy.id} rule vector.${c} must give an integer in -128..127`);
    vector[c] = n;
  }
  const vectorInput = new Map<string, CelInput>(Object.entries(vector).map(([k, v]) => [k, BigInt(v)]));
  const s = policy.plans.status({ ...bindings, vector: vectorInput });
  const over = stopped(policy, 'status');
  if (over !== undefined) throw over;
  if (isCelError(s)) throw new PolicyError('POLICY_EVALUATION_FAILED', `attestation policy ${policy.id} rule status failed to evaluate`, { cause: s });
  // SECURITY: only the four EAR statuses leave the policy (a typo such as "affirmed" cannot pass as affirming).
  if (typeof s !== 'string' || !(EAR_STATUSES as readonly string[]).includes(s)) {
    throw new PolicyError('POLICY_EVALUATION_FAILED', `attestation policy ${policy.id} rule status must give one of ${EAR_STATUSES.join(', ')}`);
  }
  return { status: s as EarStatus, vector, policyId: policy.id, version: policy.version };
}
