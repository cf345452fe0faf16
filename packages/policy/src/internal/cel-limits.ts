import type { Expr } from '@bufbuild/cel-spec/cel/expr/syntax_pb.js';
import type { PolicyLimits } from '../limits.js';

/** A rule over a static limit: where (the offending node's id) and why. */
export interface LimitIssue {
  readonly exprId: bigint;
  readonly message: string;
}

interface Walk {
  nodes: number;
  issue: LimitIssue | undefined;
}

/**
 * Checks one parsed rule against the static limits of {@link PolicyLimits}: AST nodes, AST depth,
 * comprehensions nested in another's condition or step, and a lower bound of its evaluation cost
 * (comprehensions over list and map literals: `map`/`filter`/`exists_one` run once per element,
 * `all`/`exists` at least once). Returns the first issue found, or undefined.
 */
export function checkStaticLimits(root: Expr, limits: PolicyLimits): LimitIssue | undefined {
  const w: Walk = { nodes: 0, issue: undefined };
  const cost = walk(root, 1, 0, w, limits);
  if (w.issue !== undefined) return w.issue;
  // SECURITY: rules so large that every evaluation is expensive are refused at upload (resource exhaustion).
  if (w.nodes > limits.maxAstNodes) return { exprId: root.id, message: `rule has ${w.nodes} AST nodes, above the limit of ${limits.maxAstNodes}` };
  // SECURITY: a comprehension bomb over literals is refused at upload rather than stopped at every evaluation.
  if (cost > limits.maxEvaluationCost) {
    return { exprId: root.id, message: `rule needs at least ${cost} cost units per evaluation, above the limit of ${limits.maxEvaluationCost}` };
  }
  return undefined;
}

/** Walks `e`, recording nodes and the first issue; returns a lower bound of its evaluation cost in budget units. */
function walk(e: Expr | undefined, depth: number, nesting: number, w: Walk, limits: PolicyLimits): number {
  if (e === undefined || w.issue !== undefined) return 0;
  w.nodes++;
  // SECURITY: deep nesting exhausts the evaluator's stack and multiplies work (resource exhaustion).
  if (depth > limits.maxAstDepth) {
    w.issue = { exprId: e.id, message: `expression nests deeper than ${limits.maxAstDepth} levels` };
    return 0;
  }
  const sub = (x: Expr | undefined, n = nesting): number => walk(x, depth + 1, n, w, limits);
  const k = e.exprKind;
  switch (k.case) {
    case 'selectExpr':
      return sub(k.value.operand);
    case 'callExpr':
      return sub(k.value.target) + k.value.args.reduce((n, a) => n + sub(a), 0);
    case 'listExpr':
      return k.value.elements.reduce((n, a) => n + sub(a), 0);
    case 'structExpr':
      return k.value.entries.reduce((n, en) => n + sub(en.value) + (en.keyKind.case === 'mapKey' ? sub(en.keyKind.value) : 0), 0);
    case 'comprehensionExpr': {
      const c = k.value;
      // SECURITY: each nested comprehension multiplies the work by its range; bounded nesting bounds the polynomial (comprehension bombs).
      if (nesting + 1 > limits.maxComprehensionNesting) {
        w.issue = { exprId: e.id, message: `comprehensions nest deeper than ${limits.maxComprehensionNesting} levels` };
        return 0;
      }
      const fixed = sub(c.iterRange) + sub(c.accuInit) + sub(c.result);
      const nodesBefore = w.nodes;
      const body = sub(c.loopCondition, nesting + 1) + sub(c.loopStep, nesting + 1);
      const perIteration = w.nodes - nodesBefore + body;
      const r = c.iterRange?.exprKind;
      const elements = r?.case === 'listExpr' ? r.value.elements.length : r?.case === 'structExpr' ? r.value.entries.length : 0;
      // `map`, `filter` and `exists_one` have the constant condition `true`: they visit every element.
      const cond = c.loopCondition?.exprKind;
      const visitsAll = cond?.case === 'constExpr' && cond.value.constantKind.case === 'boolValue' && cond.value.constantKind.value;
      const iterations = visitsAll ? elements : Math.min(elements, 1);
      return fixed + iterations * perIteration;
    }
    default:
      return 0;
  }
}
