import { CelScalar, celFunc, celMethod, isCelError, isCelList, isCelMap, listType, type CelFunc, type CelList, type CelValue } from '@bufbuild/cel';
import { ConstantSchema, Expr_CallSchema, ExprSchema, type Expr } from '@bufbuild/cel-spec/cel/expr/syntax_pb.js';
import { create } from '@bufbuild/protobuf';
import type { PolicyLimits } from '../limits.js';

/**
 * The run-time budget of CEL evaluations. @bufbuild/cel has no cost tracker and no hook in its
 * comprehension loop, so Keyhold interposes in two places it controls:
 * - the AST: {@link instrumentComprehensions} wraps every comprehension's loop condition in a call
 *   to {@link BUDGET_FUNCTION}, which charges the iteration's static cost (the nodes of its condition
 *   and step) before each iteration; the name starts with `@`, so no policy can call it or shadow it;
 * - the function table: every function that builds a string, bytes or list value is replaced by one
 *   that checks the size of its result *before* building it and charges for it.
 * Every 256 units, an optional wall-clock backstop is checked. Exceeding a limit stops the evaluation (every
 * later charge fails too, so error-absorbing operators such as `||` cannot keep it going) and the
 * caller denies. Evaluation is synchronous, so the active meter is a module variable.
 */

/** Called (only by instrumented ASTs) before each comprehension iteration: `@keyhold_budget(units, condition)`. */
export const BUDGET_FUNCTION = '@keyhold_budget';
/** Wraps (only in instrumented ASTs) each comprehension's range: charges its size, as the loop copies it first. */
export const RANGE_FUNCTION = '@keyhold_range';

class BudgetExceeded extends Error {
  override readonly name = 'BudgetExceeded';
}

/** Units between two reads of the clock (reading it on every charge would cost the fast path). */
const CLOCK_EVERY_UNITS = 256;

class Meter {
  cost = 0;
  nextClock = CLOCK_EVERY_UNITS;
  exceeded: string | undefined;
  constructor(
    readonly limits: PolicyLimits,
    readonly deadline: number,
  ) {}
}

let active: Meter | undefined;

function exceed(m: Meter, why: string): never {
  m.exceeded ??= why;
  throw new BudgetExceeded(m.exceeded);
}

function meter(): Meter {
  const m = active;
  // SECURITY: an evaluation outside a metered run would have no bound; refuse it (fail closed).
  if (m === undefined) throw new BudgetExceeded('policy evaluated without a budget');
  // SECURITY: once over budget, every later charge fails, so no operator can absorb the error and keep evaluating.
  if (m.exceeded !== undefined) throw new BudgetExceeded(m.exceeded);
  return m;
}

/** Charges `units`; throws once the evaluation is over its cost or time budget. */
export function charge(units: number): void {
  const m = meter();
  m.cost += units;
  // SECURITY: bounds the CPU one policy evaluation may take (policy bombs; issue 12).
  if (m.cost > m.limits.maxEvaluationCost) exceed(m, `its cost exceeded ${m.limits.maxEvaluationCost} units`);
  if (m.cost >= m.nextClock && m.limits.maxEvaluationMs > 0) {
    m.nextClock = m.cost + CLOCK_EVERY_UNITS;
    // SECURITY: a backstop for work the cost model underestimates: no evaluation outlives its deadline by more than ~256 units.
    if (performance.now() > m.deadline) exceed(m, `it ran longer than ${m.limits.maxEvaluationMs} ms`);
  }
}

/** Checks that a string or bytes value of `length` may be built, and charges for it. */
function chargeString(length: number): void {
  const m = meter();
  // SECURITY: bounds the memory a rule can allocate in one value (string growth bombs).
  if (length > m.limits.maxStringLength) exceed(m, `it built a string or bytes value longer than ${m.limits.maxStringLength}`);
  charge(1 + (length >>> 6));
}

/** Checks that a list of `length` elements may be built, and charges `elementsBuilt` of them. */
function chargeList(length: number, elementsBuilt: number): void {
  const m = meter();
  // SECURITY: bounds list growth by concatenation (list bombs).
  if (length > m.limits.maxListLength) exceed(m, `it built a list longer than ${m.limits.maxListLength}`);
  charge(1 + (elementsBuilt >>> 6));
}

/** Why the running evaluation was stopped, if it was (for messages while still inside {@link metered}). */
export function budgetExceeded(): string | undefined {
  return active?.exceeded;
}

export interface Metered<T> {
  readonly value: T;
  /** Why the evaluation was stopped, when it exceeded its budget. */
  readonly exceeded: string | undefined;
  readonly cost: number;
}

/** Runs `fn` (synchronous CEL evaluations) under a fresh budget. */
export function metered<T>(limits: PolicyLimits, fn: () => T): Metered<T> {
  const previous = active;
  const m = new Meter(limits, performance.now() + limits.maxEvaluationMs);
  active = m;
  try {
    const value = fn();
    return { value, exceeded: m.exceeded, cost: m.cost };
  } finally {
    active = previous;
  }
}

// ---- AST instrumentation

function nodeCount(e: Expr | undefined): number {
  if (e === undefined) return 0;
  const k = e.exprKind;
  switch (k.case) {
    case 'selectExpr':
      return 1 + nodeCount(k.value.operand);
    case 'callExpr':
      return 1 + nodeCount(k.value.target) + k.value.args.reduce((n, a) => n + nodeCount(a), 0);
    case 'listExpr':
      return 1 + k.value.elements.reduce((n, a) => n + nodeCount(a), 0);
    case 'structExpr':
      return 1 + k.value.entries.reduce((n, en) => n + nodeCount(en.value) + (en.keyKind.case === 'mapKey' ? nodeCount(en.keyKind.value) : 0), 0);
    case 'comprehensionExpr': {
      const c = k.value;
      return 1 + nodeCount(c.iterRange) + nodeCount(c.accuInit) + nodeCount(c.loopCondition) + nodeCount(c.loopStep) + nodeCount(c.result);
    }
    default:
      return 1;
  }
}

function maxId(e: Expr | undefined): bigint {
  if (e === undefined) return 0n;
  let m = e.id;
  const see = (x: Expr | undefined): void => {
    const v = maxId(x);
    if (v > m) m = v;
  };
  const k = e.exprKind;
  if (k.case === 'selectExpr') see(k.value.operand);
  else if (k.case === 'callExpr') [k.value.target, ...k.value.args].forEach(see);
  else if (k.case === 'listExpr') k.value.elements.forEach(see);
  else if (k.case === 'structExpr') k.value.entries.forEach((en) => (see(en.value), en.keyKind.case === 'mapKey' && see(en.keyKind.value)));
  else if (k.case === 'comprehensionExpr') [k.value.iterRange, k.value.accuInit, k.value.loopCondition, k.value.loopStep, k.value.result].forEach(see);
  return m;
}

/**
 * Wraps the loop condition of every comprehension of `root` (in place) in `@keyhold_budget(units,
 * condition)`, units being the nodes of its condition and step, and its range in `@keyhold_range(range)`.
 * Run after type checking, before planning.
 */
export function instrumentComprehensions(root: Expr): void {
  let nextId = maxId(root) + 1n;
  const visit = (e: Expr | undefined): void => {
    if (e === undefined) return;
    const k = e.exprKind;
    switch (k.case) {
      case 'selectExpr':
        visit(k.value.operand);
        return;
      case 'callExpr':
        visit(k.value.target);
        k.value.args.forEach(visit);
        return;
      case 'listExpr':
        k.value.elements.forEach(visit);
        return;
      case 'structExpr':
        for (const en of k.value.entries) {
          visit(en.value);
          if (en.keyKind.case === 'mapKey') visit(en.keyKind.value);
        }
        return;
      case 'comprehensionExpr': {
        const c = k.value;
        const units = Math.max(1, nodeCount(c.loopCondition) + nodeCount(c.loopStep));
        [c.iterRange, c.accuInit, c.loopCondition, c.loopStep, c.result].forEach(visit);
        const cost = create(ExprSchema, { id: nextId++, exprKind: { case: 'constExpr', value: create(ConstantSchema, { constantKind: { case: 'int64Value', value: BigInt(units) } }) } });
        const call = (fn: string, args: Expr[]): Expr => create(ExprSchema, { id: nextId++, exprKind: { case: 'callExpr', value: create(Expr_CallSchema, { function: fn, args }) } });
        if (c.loopCondition !== undefined) c.loopCondition = call(BUDGET_FUNCTION, [cost, c.loopCondition]);
        if (c.iterRange !== undefined) c.iterRange = call(RANGE_FUNCTION, [c.iterRange]);
        return;
      }
      default:
        return;
    }
  };
  visit(root);
}

// ---- Functions that charge for their work and for what they build

const { INT, DYN, STRING, BYTES } = CelScalar;
const LIST = listType(DYN);

/**
 * Units of work to scan a value: one per 8 characters or bytes (native string operations), two per
 * element of a list or map (each element access wraps the value: ~0.2 µs, measured).
 */
function scanUnits(v: unknown): number {
  if (typeof v === 'string') return v.length >>> 3;
  if (v instanceof Uint8Array) return v.byteLength >>> 3;
  if (isCelList(v)) return 2 * (v as CelList).size;
  if (isCelMap(v)) return 2 * (v as { size: number }).size;
  return 0;
}

/** {@link scanUnits} of a nested value and everything in it, counted up to `cap` (the walk costs what it counts). */
function deepUnits(v: unknown, cap: number): number {
  let n = 0;
  const stack: unknown[] = [v];
  while (stack.length > 0 && n <= cap) {
    const x = stack.pop();
    n += 2 + (stringSize(x) >>> 3);
    if (isCelList(x)) for (const e of x as CelList) stack.push(e);
    else if (isCelMap(x)) for (const [k, e] of x as unknown as Iterable<[unknown, unknown]>) stack.push(k, e);
  }
  return n;
}

function stringSize(v: unknown): number {
  return typeof v === 'string' ? v.length : v instanceof Uint8Array ? v.byteLength : 0;
}

/** Characters of every string in `v` plus a few per element: an upper bound on `format`'s output. */
function formattedSize(v: unknown, depth = 0): number {
  if (typeof v === 'string') return v.length + 2;
  if (v instanceof Uint8Array) return v.byteLength * 4 + 2;
  if (depth > 32) return 0;
  if (isCelList(v)) {
    let n = 2;
    for (const x of v as CelList) n += formattedSize(x, depth + 1) + 2;
    return n;
  }
  if (isCelMap(v)) {
    let n = 2;
    for (const [k, x] of v as unknown as Iterable<[unknown, unknown]>) n += formattedSize(k, depth + 1) + formattedSize(x, depth + 1) + 4;
    return n;
  }
  return 32;
}

function occurrences(s: string, sub: string, limit: number): number {
  if (sub.length === 0) return Math.min(s.length + 1, limit);
  let n = 0;
  for (let i = s.indexOf(sub); i >= 0 && n < limit; i = s.indexOf(sub, i + sub.length)) n++;
  return n;
}

/**
 * For functions that build a string: an upper bound of its length, computed before the call so
 * that an oversized result is never allocated. Undefined for functions that build none.
 */
function stringResultBound(name: string, target: unknown, args: readonly unknown[]): number | undefined {
  const s = stringSize(target);
  switch (name) {
    case 'replace': {
      const from = String(args[0]);
      const to = String(args[1]);
      const growth = to.length - from.length;
      if (growth <= 0) return s;
      // Count occurrences only as far as needed to exceed the limit (the count itself is a scan).
      const enough = Math.floor((meter().limits.maxStringLength - s) / growth) + 1;
      const n = Math.min(args[2] === undefined ? s : Number(args[2]), enough);
      return s + growth * occurrences(String(target), from, Math.max(0, n));
    }
    case 'join': {
      let n = 0;
      let count = 0;
      for (const x of target as CelList) {
        n += stringSize(x);
        count++;
      }
      return n + Math.max(0, count - 1) * stringSize(args[0]);
    }
    case 'format':
      return s + formattedSize(args[0]);
    case 'strings.quote':
      return stringSize(args[0]) * 6 + 2;
    case 'lowerAscii':
    case 'upperAscii':
    case 'trim':
    case 'substring':
    case 'charAt':
      return s;
    case 'string':
      // string(bytes) decodes at most one character per byte; other conversions are small.
      return stringSize(args[0]) + 32;
    default:
      return undefined;
  }
}

/**
 * Work units of one call, charged before it runs: one, plus {@link scanUnits} of its receiver and
 * arguments (nested values counted whole for equality and `in`, which compare them element by
 * element), except `matches`: RE2 simulates the
 * pattern's automaton over the text, O(text x pattern), measured at up to ~400 ns per character for a
 * 7-character pattern with a group, so it costs text x pattern / 2 units.
 */
function workUnits(name: string, target: unknown, args: readonly unknown[]): number {
  if (name === '_==_' || name === '_!=_' || name === '@in') {
    // Equality compares nested values element by element: charge their whole size. `in` a map is
    // one hash lookup; `in` a list compares with every element.
    const cap = meter().limits.maxEvaluationCost;
    if (name === '@in' && isCelMap(args[1])) return 1 + deepUnits(args[0], cap);
    return 1 + deepUnits(args[0], cap) + deepUnits(args[1], cap);
  }
  if (name === 'matches') {
    const text = stringSize(target === undefined ? args[0] : target);
    const pattern = stringSize(target === undefined ? args[1] : args[0]);
    return 1 + Math.floor((text * Math.max(1, pattern)) / 2);
  }
  let work = 1 + scanUnits(target);
  for (const a of args) work += scanUnits(a);
  return work;
}

const QUOTE_ESCAPES: Readonly<Record<string, string>> = { '\0': '\\0', '\x07': '\\a', '\b': '\\b', '\t': '\\t', '\n': '\\n', '\v': '\\v', '\f': '\\f', '\r': '\\r', '"': '\\"', '\\': '\\\\' };

/**
 * Linear replacements for strings-extension functions whose @bufbuild/cel implementations are
 * quadratic (`replace` rebuilds the whole string per occurrence) or build strings one character at a
 * time (~20-700 ns per character, measured): same results, checked by a differential property test.
 */
export const LINEAR_IMPLEMENTATIONS: Readonly<Record<string, (target: string, args: readonly unknown[]) => CelValue>> = {
  replace(s, [fromArg, toArg, n]) {
    const from = fromArg as string;
    const to = toArg as string;
    // @bufbuild/cel replaces at most `n` (default: the string's length) occurrences, none when n <= 0.
    const count = n === undefined ? s.length : Number(n);
    if (count <= 0) return s;
    // Its loop inserts `to` at the front `count` times for an empty `from`.
    if (from === '') return to.repeat(count) + s;
    // Native split/join (~1-2 ns per character) when every occurrence is replaced.
    if (count >= s.length) return s.split(from).join(to);
    const parts: string[] = [];
    let pos = 0;
    let done = 0;
    for (let i = s.indexOf(from); i !== -1 && done < count; i = s.indexOf(from, pos)) {
      parts.push(s.slice(pos, i), to);
      pos = i + from.length;
      done++;
    }
    parts.push(s.slice(pos));
    return parts.join('');
  },
  lowerAscii: (s) => s.replace(/[A-Z]+/g, (m) => m.toLowerCase()),
  upperAscii: (s) => s.replace(/[a-z]+/g, (m) => m.toUpperCase()),
  'strings.quote': (_s, [str]) => `"${(str as string).replace(/[\0\x07\b\t\n\v\f\r"\\]/g, (c) => QUOTE_ESCAPES[c] as string)}"`,
};

/**
 * `f` with a budget: before the call, it charges its work ({@link workUnits}), and for functions that build a string, checks the result's bound against
 * maxStringLength; a list result is checked against maxListLength. Same name and signature, so it
 * takes the place of @bufbuild/cel's own function.
 */
function budgeted(f: CelFunc): CelFunc {
  const call = (target: CelValue | undefined, args: CelValue[]): CelValue => {
    const bound = stringResultBound(f.name, target, args);
    if (bound !== undefined) chargeString(bound);
    charge(workUnits(f.name, target, args));
    const linear = LINEAR_IMPLEMENTATIONS[f.name];
    const r = linear !== undefined ? linear(target as string, args) : f.call(0, target, args);
    if (r === undefined || isCelError(r)) throw new Error(r === undefined ? `no matching overload for ${f.name}` : r.message);
    if (isCelList(r) && r.size > 1) chargeList(r.size, r.size);
    return r as CelValue;
  };
  const types = f.arguments as (typeof DYN)[];
  if (f.target === undefined) return celFunc(f.name, types, f.result as typeof DYN, (...args: CelValue[]) => call(undefined, args));
  return celMethod(f.name, f.target as typeof DYN, types, f.result as typeof DYN, function (this: CelValue, ...args: CelValue[]) {
    return call(this, args);
  });
}

const LIST_SYMBOL = Symbol.for('@bufbuild/cel/list');

/**
 * A CEL list over a shared, append-only array (like a Go slice): `l + r` appends r's elements in
 * place when l is the newest list over its array, else copies. @bufbuild/cel's own concatenation is
 * lazy and nests one level per `+`, so the list a `map` over n elements builds costs O(n) per element
 * to iterate (O(n^2) for the list, uncharged and uninterruptible); this one costs O(1) per element.
 * It implements the CelList interface (@bufbuild/cel recognises lists by a registered symbol).
 */
class AppendList implements Iterable<CelValue> {
  readonly [LIST_SYMBOL] = {};
  constructor(
    readonly items: CelValue[],
    readonly size: number,
  ) {}

  get(index: number): CelValue | undefined {
    return index >= 0 && index < this.size ? this.items[index] : undefined;
  }

  *values(): IterableIterator<CelValue> {
    for (let i = 0; i < this.size; i++) yield this.items[i] as CelValue;
  }

  [Symbol.iterator](): IterableIterator<CelValue> {
    return this.values();
  }
}

function concatLists(l: CelList, r: CelList): CelList {
  const size = l.size + r.size;
  if (l instanceof AppendList && l.size > 0 && l.items.length === l.size) {
    chargeList(size, r.size);
    for (const v of r) l.items.push(v);
    return new AppendList(l.items, size) as unknown as CelList;
  }
  chargeList(size, size);
  const items: CelValue[] = [];
  for (const v of l) items.push(v);
  for (const v of r) items.push(v);
  return new AppendList(items, size) as unknown as CelList;
}

const utf8 = new TextEncoder();

/**
 * The policy functions: every size-dependent function of `base` (the CEL standard library and
 * extensions) budgeted, string/bytes/list concatenation and bytes(string) with size checks, and the
 * budget hooks. Functions not returned keep @bufbuild/cel's implementations.
 */
/**
 * Whether a function's work can depend on its inputs' size: any string, bytes, list, map or dyn
 * receiver or argument. The others (arithmetic, comparisons and conversions of numbers and bools,
 * size of a list or map) are O(1) and stay unwrapped, which keeps the fast path fast.
 */
function sizeDependent(f: CelFunc): boolean {
  const sized = (t: { kind: string; scalar?: string } | undefined): boolean =>
    t !== undefined && (t.kind === 'list' || t.kind === 'map' || (t.kind === 'scalar' && (t.scalar === 'string' || t.scalar === 'bytes' || t.scalar === 'dyn')));
  return sized(f.target as { kind: string } | undefined) || (f.arguments as readonly { kind: string }[]).some(sized) || sized(f.result as { kind: string });
}

export function budgetedFunctions(base: Iterable<CelFunc>): CelFunc[] {
  return [
    ...[...base].map((f) => (sizeDependent(f) ? budgeted(f) : f)),
    celFunc(BUDGET_FUNCTION, [INT, DYN], DYN, (units: bigint, condition: CelValue) => {
      charge(Number(units));
      return condition;
    }),
    celFunc(RANGE_FUNCTION, [DYN], DYN, (range: CelValue) => {
      charge(1 + scanUnits(range));
      return range;
    }),
    celFunc('_+_', [STRING, STRING], STRING, (l: string, r: string) => {
      chargeString(l.length + r.length);
      return l + r;
    }),
    celFunc('_+_', [BYTES, BYTES], BYTES, (l: Uint8Array, r: Uint8Array) => {
      chargeString(l.byteLength + r.byteLength);
      const out = new Uint8Array(l.byteLength + r.byteLength);
      out.set(l, 0);
      out.set(r, l.byteLength);
      return out;
    }),
    celFunc('_+_', [LIST, LIST], LIST, concatLists),
    celFunc('bytes', [STRING], BYTES, (s: string) => {
      // At most 3 bytes per UTF-16 unit of a string whose own length is bounded; checked once encoded.
      charge(1 + (s.length >>> 6));
      const out = utf8.encode(s);
      chargeString(out.byteLength);
      return out;
    }),
  ];
}
