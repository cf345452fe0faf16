import type { Expr } from '@bufbuild/cel-spec/cel/expr/syntax_pb.js';
import type { PolicyLimits } from '../limits.js';

/** A rule refused before parsing: where (a character offset) and why. */
export interface SourceIssue {
  readonly offset: number;
  readonly message: string;
}

/**
 * Checks a rule's source before it is parsed. @bufbuild/cel's parser is superlinear in bracket
 * nesting (measured: 400 unclosed `(` take ~1.6 s, `[1,` ~2.5 s) and costs ~30 µs per character, so
 * the cheap limits are applied to the text first: bracket nesting (outside string literals and
 * comments) above maxAstDepth, and more than 2 x maxAstNodes tokens (a token is an identifier,
 * number or string literal; each is at least one AST node, `1e+5` and `b"x"` at most two tokens
 * for one node, so no rule within the node limit is refused here).
 */
export function checkSourceLimits(source: string, limits: PolicyLimits): SourceIssue | undefined {
  let depth = 0;
  let tokens = 0;
  let inWord = false;
  for (let i = 0; i < source.length; i++) {
    const c = source[i] as string;
    const word = /[A-Za-z0-9_]/.test(c);
    if (word && !inWord) tokens++;
    inWord = word;
    if (c === '/' && source[i + 1] === '/') {
      const nl = source.indexOf('\n', i);
      i = nl === -1 ? source.length : nl;
      continue;
    }
    if (c === '"' || c === "'") {
      tokens++;
      inWord = false;
      const raw = /[rR]/.test(source[i - 1] ?? '') || (/[bB]/.test(source[i - 1] ?? '') && /[rR]/.test(source[i - 2] ?? ''));
      const quote = source.startsWith(c.repeat(3), i) ? c.repeat(3) : c;
      let j = i + quote.length;
      while (j < source.length && !source.startsWith(quote, j)) j += !raw && source[j] === '\\' ? 2 : 1;
      i = j + quote.length - 1;
      continue;
    }
    if (c === '(' || c === '[' || c === '{') {
      // SECURITY: deep bracket nesting makes the parser superlinear (upload-time denial of service).
      if (++depth > limits.maxAstDepth) return { offset: i, message: `expression nests deeper than ${limits.maxAstDepth} levels` };
    } else if (c === ')' || c === ']' || c === '}') depth = Math.max(0, depth - 1);
  }
  // SECURITY: bounds parse time by the rule's size in tokens, not only characters.
  if (tokens > 2 * limits.maxAstNodes) return { offset: 0, message: `rule has more than ${limits.maxAstNodes} AST nodes (${tokens} tokens)` };
  return undefined;
}

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
