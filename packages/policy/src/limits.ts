/**
 * Cost bounds on CEL policies (issue 12). A policy is refused at upload when one of its rules
 * exceeds a static limit, and every evaluation runs under a budget: a policy that exceeds it is
 * stopped and denies, with the reason (fail closed).
 *
 * Cost units: each iteration of a comprehension (`all`, `exists`, `exists_one`, `map`, `filter`)
 * costs the number of AST nodes of its condition and step; each string, bytes or list value a rule
 * builds (concatenation, string functions, conversions) costs one unit plus one per 64 characters,
 * bytes or elements. Evaluation outside comprehensions is bounded by the rule's size.
 */
export interface PolicyLimits {
  /** Upload: AST nodes in one rule. */
  readonly maxAstNodes: number;
  /** Upload: nesting depth of one rule's AST. */
  readonly maxAstDepth: number;
  /** Upload: comprehensions nested in the condition or step of another comprehension (1 = no nesting). */
  readonly maxComprehensionNesting: number;
  /**
   * Run: cost units one evaluation of a policy (all its rules together) may spend. At upload, a rule
   * whose comprehensions over list and map literals alone need more is refused.
   */
  readonly maxEvaluationCost: number;
  /**
   * Run: an optional wall-clock backstop in milliseconds (checked every 256 cost units); 0, the
   * default, disables it. The cost budget is the bound: it is deterministic, whereas a wall-clock
   * limit denies legitimate releases whenever the process is descheduled (measured: the default
   * policy, ~0.16 ms, took over 100 ms of wall time on a loaded 2-core machine).
   */
  readonly maxEvaluationMs: number;
  /** Run: longest string (UTF-16 code units) or bytes value a rule may build. */
  readonly maxStringLength: number;
  /** Run: longest list a rule may build by concatenation. */
  readonly maxListLength: number;
}

/**
 * Defaults: generous for real policies (the built-in attestation policy costs ~800 units with four
 * reference values and evaluates in ~0.15 ms), small enough that a policy bomb is stopped within a
 * few milliseconds of CPU and a few megabytes (figures in the policy bench).
 */
export const DEFAULT_POLICY_LIMITS: PolicyLimits = Object.freeze({
  maxAstNodes: 2048,
  maxAstDepth: 48,
  maxComprehensionNesting: 3,
  maxEvaluationCost: 30_000,
  maxEvaluationMs: 0,
  maxStringLength: 1024 * 1024,
  maxListLength: 100_000,
});

/** Defaults with `overrides` applied. Programmer errors (non-positive or non-integer values) throw TypeError. */
export function resolvePolicyLimits(overrides: Partial<PolicyLimits> = {}): PolicyLimits {
  const out = { ...DEFAULT_POLICY_LIMITS };
  for (const [k, v] of Object.entries(overrides) as [keyof PolicyLimits, unknown][]) {
    if (!(k in DEFAULT_POLICY_LIMITS)) throw new TypeError(`unknown policy limit ${String(k)}`);
    if (v === undefined) continue;
    const min = k === 'maxEvaluationMs' ? 0 : 1;
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min) throw new TypeError(`policy limit ${k} must be an integer of at least ${min}`);
    out[k] = v;
  }
  return Object.freeze(out);
}
