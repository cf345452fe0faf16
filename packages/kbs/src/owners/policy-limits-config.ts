/**
 * `[policy]` cost bounds of CEL policies (issue 12), parsed once by config.ts into @keyhold/policy's
 * `PolicyLimits` (defaults and units documented there and in the README):
 *   max_ast_nodes, max_ast_depth, max_comprehension_nesting   refused at upload beyond these
 *   max_evaluation_cost                                       cost units one evaluation may spend (denies beyond)
 *   max_evaluation_ms                                         optional wall-clock backstop (0 = off)
 *   max_string_length, max_list_length                        largest value a rule may build
 */
import { z } from 'zod';
import { compileAttestationPolicy, compileResourcePolicy, DEFAULT_ATTESTATION_POLICY, DEFAULT_RESOURCE_POLICY, PolicyError, resolvePolicyLimits, type PolicyLimits } from '@keyhold/policy';

const count = (max: number) => z.number().int().min(1).max(max).optional();

export const POLICY_LIMIT_FIELDS = {
  max_ast_nodes: count(1_000_000),
  max_ast_depth: count(10_000),
  max_comprehension_nesting: count(64),
  max_evaluation_cost: count(1_000_000_000),
  max_evaluation_ms: z.number().int().min(0).max(60_000).optional(),
  max_string_length: count(256 * 1024 * 1024),
  max_list_length: count(100_000_000),
};

type Fields = { readonly [K in keyof typeof POLICY_LIMIT_FIELDS]?: number | undefined };

/**
 * The limits the KBS's policy engine runs with: defaults, each overridden by its key. Throws Error
 * (a config error) when they are too tight for the built-in default policies, which must fit them.
 */
export function policyLimitsFrom(section: Fields | undefined): PolicyLimits {
  const limits = resolvePolicyLimits({
    maxAstNodes: section?.max_ast_nodes,
    maxAstDepth: section?.max_ast_depth,
    maxComprehensionNesting: section?.max_comprehension_nesting,
    maxEvaluationCost: section?.max_evaluation_cost,
    maxEvaluationMs: section?.max_evaluation_ms,
    maxStringLength: section?.max_string_length,
    maxListLength: section?.max_list_length,
  });
  try {
    compileAttestationPolicy(DEFAULT_ATTESTATION_POLICY, { limits });
    compileResourcePolicy(DEFAULT_RESOURCE_POLICY, { limits });
  } catch (err) {
    if (!(err instanceof PolicyError)) throw err;
    throw new Error(`[policy] max_* limits are too tight for the built-in default policies (${err.message.slice(0, 160)}); raise them`);
  }
  return limits;
}
