import { parse, plan, type CelResult, type CelInput } from '@bufbuild/cel';
import { policyEnv as env } from './internal/cel-env.js';
import { CelChecker, T, fmt, resultAssignable, type CheckType } from './internal/cel-check.js';
import { PolicyCompileError, PolicyError, type PolicyCompileIssue } from './errors.js';
import { instrumentComprehensions } from './internal/cel-budget.js';
import { checkSourceLimits, checkStaticLimits } from './internal/cel-limits.js';
import { resolvePolicyLimits, type PolicyLimits } from './limits.js';
import {
  TRUSTWORTHINESS_COMPONENTS,
  parsePolicyDocument,
  type AttestationPolicyDocument,
  type ResourcePolicyDocument,
  type TrustworthinessComponent,
} from './document.js';

type RulePlan = (bindings: Record<string, CelInput>) => CelResult;

/**
 * Variables an attestation policy's rules see:
 * - `claims`: the verifier's claims for the evidence, e.g. `claims.tpm.pcr08`, `claims.tpm.ak_public`,
 *   `claims.init_data_claims` (annotated-evidence shape);
 * - `reference`: reference values, name → list of accepted values (e.g. `reference.pcr08`);
 * - `tee`: the tee name (`"tpm"`);
 * - `vector` (status rule only): the trustworthiness vector computed by the vector rules.
 */
export const ATTESTATION_VARIABLES: ReadonlyMap<string, CheckType> = new Map<string, CheckType>([
  ['claims', T.map(T.string, T.dyn)],
  ['reference', T.map(T.string, T.list(T.dyn))],
  ['tee', T.string],
]);
const STATUS_VARIABLES: ReadonlyMap<string, CheckType> = new Map([...ATTESTATION_VARIABLES, ['vector', T.map(T.string, T.int)]]);

/**
 * Variables a resource policy's rule sees:
 * - `input`: Trustee's input, the token claims plus `plugin`, `resource-path` and `query`
 *   (so `input["resource-path"]` and `input.submods.cpu0["ear.status"]` work);
 * - `submods`: the token's `submods`;
 * - `ear`: `submods.cpu0` with the `ear.` prefix taken off its keys (`ear.status`,
 *   `ear["trustworthiness-vector"]`, `ear["appraisal-policy-id"]`);
 * - `evidence`: `submods.cpu0["ear.veraison.annotated-evidence"]` ({} when absent);
 * - `init_data_claims`: `evidence.init_data_claims` ({} when absent), e.g. `init_data_claims.workload_id`;
 * - `plugin` (`"resource"`), `resource_path` (`repo/type/tag`), `repository`, `resource_type`,
 *   `resource_tag`, and `query` (string map of the request's query parameters).
 */
export const RESOURCE_VARIABLES: ReadonlyMap<string, CheckType> = new Map<string, CheckType>([
  ['input', T.map(T.string, T.dyn)],
  ['submods', T.map(T.string, T.dyn)],
  ['ear', T.map(T.string, T.dyn)],
  ['evidence', T.map(T.string, T.dyn)],
  ['init_data_claims', T.map(T.string, T.dyn)],
  ['plugin', T.string],
  ['resource_path', T.string],
  ['repository', T.string],
  ['resource_type', T.string],
  ['resource_tag', T.string],
  ['query', T.map(T.string, T.string)],
]);

const attestationChecker = new CelChecker(env, ATTESTATION_VARIABLES);
const statusChecker = new CelChecker(env, STATUS_VARIABLES);
const resourceChecker = new CelChecker(env, RESOURCE_VARIABLES);

export interface CompiledAttestationPolicy {
  readonly kind: 'attestation';
  readonly id: string;
  /** The store's version, 0 for a policy that was never stored (built-in default, local test). */
  readonly version: number;
  readonly document: AttestationPolicyDocument;
  /** The limits it was compiled under; evaluations run under its budget. */
  readonly limits: PolicyLimits;
  /** @internal evaluation plans; use `evaluateAttestationPolicy`. */
  readonly plans: { readonly status: RulePlan; readonly vector: ReadonlyMap<TrustworthinessComponent, RulePlan> };
}

export interface CompiledResourcePolicy {
  readonly kind: 'resource';
  readonly id: string;
  readonly version: number;
  readonly document: ResourcePolicyDocument;
  /** The limits it was compiled under; evaluations run under its budget. */
  readonly limits: PolicyLimits;
  /** @internal evaluation plan; use `evaluateResourcePolicy`. */
  readonly plan: RulePlan;
}

export type CompiledPolicy = CompiledAttestationPolicy | CompiledResourcePolicy;

function position(source: string, offset: number): { line: number; column: number } {
  const before = source.slice(0, Math.max(0, Math.min(offset, source.length)));
  const lines = before.split('\n');
  return { line: lines.length, column: (lines[lines.length - 1]?.length ?? 0) + 1 };
}

export interface CompilePolicyOptions {
  /** The store's version of the document (0 for a policy that was never stored). */
  readonly version?: number;
  /** Static limits checked here and the run-time budget of every evaluation; defaults DEFAULT_POLICY_LIMITS. */
  readonly limits?: Partial<PolicyLimits>;
}

function compileRule(rule: string, source: string, checker: CelChecker, want: CheckType, issues: PolicyCompileIssue[], limits: PolicyLimits): RulePlan | undefined {
  const tooBig = checkSourceLimits(source, limits);
  if (tooBig !== undefined) {
    issues.push({ rule, offset: tooBig.offset, ...position(source, tooBig.offset), message: tooBig.message });
    return undefined;
  }
  let parsed: ReturnType<typeof parse>;
  try {
    parsed = parse(source);
  } catch (err) {
    // The parser reports `location.start` {offset,line,column}; a stack overflow on hostile nesting
    // surfaces as RangeError and is reported at the start.
    const loc = (err as { location?: { start?: { offset?: number } } }).location?.start;
    const offset = typeof loc?.offset === 'number' ? loc.offset : 0;
    const raw = err instanceof RangeError ? 'expression nests too deeply' : ((err as { rawMessage?: unknown }).rawMessage ?? (err as Error).message);
    issues.push({ rule, offset, ...position(source, offset), message: `syntax error: ${String(raw).slice(0, 300)}` });
    return undefined;
  }
  const checked = checker.check(parsed);
  if ('issue' in checked) {
    issues.push({ rule, offset: checked.issue.offset, ...position(source, checked.issue.offset), message: checked.issue.message });
    return undefined;
  }
  // SECURITY: a rule whose result type cannot be the required one is refused at upload, so a
  // resource rule cannot "allow" by returning a truthy non-bool (fail closed on type confusion).
  if (!resultAssignable(want, checked.type)) {
    issues.push({ rule, offset: 0, line: 1, column: 1, message: `rule must evaluate to ${fmt(want)}, not ${fmt(checked.type)}` });
    return undefined;
  }
  const over = checkStaticLimits(parsed.expr, limits);
  if (over !== undefined) {
    const offset = parsed.sourceInfo?.positions[String(over.exprId)] ?? 0;
    issues.push({ rule, offset, ...position(source, offset), message: over.message });
    return undefined;
  }
  // Every comprehension charges the evaluation budget before each iteration (cel-budget.ts).
  instrumentComprehensions(parsed.expr);
  const run = plan(env, parsed);
  return (bindings) => run(bindings);
}

/** Parse, type-check and plan an attestation policy. Throws PolicyCompileError listing every bad rule. */
export function compileAttestationPolicy(document: unknown, options: CompilePolicyOptions = {}): CompiledAttestationPolicy {
  const limits = resolvePolicyLimits(options.limits);
  const doc = parsePolicyDocument(document);
  if (doc.kind !== 'attestation') throw new PolicyError('POLICY_INVALID_DOCUMENT', 'expected an attestation policy (kind "attestation")');
  const issues: PolicyCompileIssue[] = [];
  const vector = new Map<TrustworthinessComponent, RulePlan>();
  for (const c of TRUSTWORTHINESS_COMPONENTS) {
    const src = doc.rules.vector?.[c];
    if (src === undefined) continue;
    const p = compileRule(`vector.${c}`, src, attestationChecker, T.int, issues, limits);
    if (p !== undefined) vector.set(c, p);
  }
  const status = compileRule('status', doc.rules.status, statusChecker, T.string, issues, limits);
  if (issues.length > 0 || status === undefined) throw new PolicyCompileError(issues);
  return { kind: 'attestation', id: doc.id, version: options.version ?? 0, document: doc, limits, plans: { status, vector } };
}

/** Parse, type-check and plan a resource policy. Throws PolicyCompileError with the position. */
export function compileResourcePolicy(document: unknown, options: CompilePolicyOptions = {}): CompiledResourcePolicy {
  const limits = resolvePolicyLimits(options.limits);
  const doc = parsePolicyDocument(document);
  if (doc.kind !== 'resource') throw new PolicyError('POLICY_INVALID_DOCUMENT', 'expected a resource policy (kind "resource")');
  const issues: PolicyCompileIssue[] = [];
  const p = compileRule('rule', doc.rule, resourceChecker, T.bool, issues, limits);
  if (p === undefined) throw new PolicyCompileError(issues);
  return { kind: 'resource', id: doc.id, version: options.version ?? 0, document: doc, limits, plan: p };
}

/** Compile either kind, as named by the document's `kind`. */
export function compilePolicy(document: unknown, options: CompilePolicyOptions = {}): CompiledPolicy {
  const doc = parsePolicyDocument(document);
  return doc.kind === 'attestation' ? compileAttestationPolicy(doc, options) : compileResourcePolicy(doc, options);
}
