import type { CelEnv, CelType, parse } from '@bufbuild/cel';
import { compileRegex } from './cel-env.js';

/**
 * A static type checker for CEL expressions over the Keyhold policy variables.
 *
 * @bufbuild/cel 0.6 parses and evaluates but does not export a type checker, so this walks the
 * parsed AST with the library's own function overload table (name, receiver, argument and result
 * types) and a small set of declared variables. Types are gradual: map values coming from claims are
 * `dyn`, and anything `dyn` is accepted where a concrete type is expected (checked again at runtime).
 * It refuses undeclared variables, unknown functions, calls with no matching overload, field access
 * on scalars, message construction and results of the wrong type.
 */

export type CheckType =
  | { readonly k: 'dyn' | 'bool' | 'int' | 'uint' | 'double' | 'string' | 'bytes' | 'null' | 'type' | 'timestamp' | 'duration' }
  | { readonly k: 'list'; readonly e: CheckType }
  | { readonly k: 'map'; readonly key: CheckType; readonly v: CheckType };

export const T = {
  dyn: { k: 'dyn' },
  bool: { k: 'bool' },
  int: { k: 'int' },
  uint: { k: 'uint' },
  double: { k: 'double' },
  string: { k: 'string' },
  bytes: { k: 'bytes' },
  null: { k: 'null' },
  type: { k: 'type' },
  list: (e: CheckType): CheckType => ({ k: 'list', e }),
  map: (key: CheckType, v: CheckType): CheckType => ({ k: 'map', key, v }),
} as const satisfies Record<string, CheckType | ((...a: CheckType[]) => CheckType)>;

type ParsedExpr = ReturnType<typeof parse>;
type Expr = ParsedExpr['expr'];

export interface CheckIssue {
  readonly offset: number;
  readonly message: string;
}

/** Thrown internally to stop at the first issue of a rule. */
class CheckFailure extends Error {
  constructor(readonly issue: CheckIssue) {
    super(issue.message);
  }
}

const MAX_DEPTH = 128;
const TYPE_NAMES = new Set(['bool', 'int', 'uint', 'double', 'string', 'bytes', 'list', 'map', 'null_type', 'type', 'dyn']);

export function fmt(t: CheckType): string {
  if (t.k === 'list') return `list(${fmt(t.e)})`;
  if (t.k === 'map') return `map(${fmt(t.key)}, ${fmt(t.v)})`;
  return t.k === 'null' ? 'null_type' : t.k;
}

function fromCel(t: CelType): CheckType {
  switch (t.kind) {
    case 'list':
      return T.list(fromCel(t.element));
    case 'map':
      return T.map(fromCel(t.key), fromCel(t.value));
    case 'object':
      if (t.name === 'google.protobuf.Timestamp') return { k: 'timestamp' };
      if (t.name === 'google.protobuf.Duration') return { k: 'duration' };
      return T.dyn;
    case 'scalar':
      return t.scalar === 'null_type' ? T.null : { k: t.scalar };
  }
}

/** Whether a value of type `arg` may be passed where `param` is expected (dyn matches anything). */
function assignable(param: CheckType, arg: CheckType): boolean {
  if (param.k === 'dyn' || arg.k === 'dyn') return true;
  if (param.k === 'list') return arg.k === 'list' && assignable(param.e, arg.e);
  if (param.k === 'map') return arg.k === 'map' && assignable(param.key, arg.key) && assignable(param.v, arg.v);
  return param.k === arg.k;
}

function same(a: CheckType, b: CheckType): boolean {
  return fmt(a) === fmt(b);
}

function join(types: readonly CheckType[]): CheckType {
  const [first, ...rest] = types;
  if (first === undefined) return T.dyn;
  return rest.every((t) => same(t, first)) ? first : T.dyn;
}

interface Overload {
  readonly receiver: CheckType | undefined;
  readonly args: readonly CheckType[];
  readonly result: CheckType;
}

/** A checker bound to one evaluation environment and one set of declared variables. */
export class CelChecker {
  private readonly overloads = new Map<string, Overload[]>();
  private scopes: Map<string, CheckType>[] = [];

  constructor(
    env: CelEnv,
    private readonly variables: ReadonlyMap<string, CheckType>,
  ) {
    for (const f of env.funcs) {
      const list = this.overloads.get(f.name) ?? [];
      list.push({ receiver: f.target === undefined ? undefined : fromCel(f.target), args: f.arguments.map(fromCel), result: fromCel(f.result) });
      this.overloads.set(f.name, list);
    }
  }

  /** Type of the whole expression, or the first issue found. */
  check(parsed: ParsedExpr): { type: CheckType } | { issue: CheckIssue } {
    this.scopes = [];
    const positions = parsed.sourceInfo?.positions ?? {};
    try {
      return { type: this.expr(parsed.expr, positions, 0) };
    } catch (e) {
      if (e instanceof CheckFailure) return { issue: e.issue };
      throw e;
    }
  }

  private fail(e: Expr, positions: Record<string, number>, message: string): never {
    throw new CheckFailure({ offset: positions[String(e.id)] ?? 0, message });
  }

  private lookup(name: string): CheckType | undefined {
    for (let i = this.scopes.length - 1; i >= 0; i--) {
      const t = this.scopes[i]?.get(name);
      if (t !== undefined) return t;
    }
    return this.variables.get(name);
  }

  private expr(e: Expr, pos: Record<string, number>, depth: number): CheckType {
    // SECURITY: bounds recursion on hostile, deeply nested expressions (stack exhaustion).
    if (depth > MAX_DEPTH) this.fail(e, pos, `expression nests deeper than ${MAX_DEPTH} levels`);
    const sub = (x: Expr | undefined): CheckType => (x === undefined ? this.fail(e, pos, 'malformed expression') : this.expr(x, pos, depth + 1));
    const k = e.exprKind;
    switch (k.case) {
      case 'constExpr': {
        const c = k.value.constantKind;
        switch (c.case) {
          case 'boolValue':
            return T.bool;
          case 'int64Value':
            return T.int;
          case 'uint64Value':
            return T.uint;
          case 'doubleValue':
            return T.double;
          case 'stringValue':
            return T.string;
          case 'bytesValue':
            return T.bytes;
          case 'nullValue':
            return T.null;
          default:
            return this.fail(e, pos, 'unsupported constant');
        }
      }
      case 'identExpr': {
        const t = this.lookup(k.value.name);
        if (t !== undefined) return t;
        if (TYPE_NAMES.has(k.value.name)) return T.type;
        return this.fail(e, pos, `undeclared reference to '${k.value.name}'`);
      }
      case 'selectExpr': {
        const operand = sub(k.value.operand);
        if (k.value.testOnly) {
          if (operand.k !== 'map' && operand.k !== 'dyn') this.fail(e, pos, `has() needs a map, not ${fmt(operand)}`);
          return T.bool;
        }
        if (operand.k === 'map') {
          if (!assignable(operand.key, T.string)) this.fail(e, pos, `field selection needs string keys, not ${fmt(operand.key)}`);
          return operand.v;
        }
        if (operand.k === 'dyn') return T.dyn;
        return this.fail(e, pos, `type '${fmt(operand)}' has no field '${k.value.field}'`);
      }
      case 'callExpr':
        return this.call(e, k.value, pos, depth);
      case 'listExpr':
        if (k.value.optionalIndices.length > 0) this.fail(e, pos, 'optional list elements are not supported');
        return T.list(join(k.value.elements.map(sub)));
      case 'structExpr': {
        if (k.value.messageName !== '') this.fail(e, pos, `message construction (${k.value.messageName}) is not supported`);
        const keys: CheckType[] = [];
        const values: CheckType[] = [];
        for (const entry of k.value.entries) {
          if (entry.optionalEntry) this.fail(e, pos, 'optional map entries are not supported');
          if (entry.keyKind.case !== 'mapKey') this.fail(e, pos, 'malformed map literal');
          const key = sub(entry.keyKind.value);
          if (!['string', 'int', 'uint', 'bool', 'dyn'].includes(key.k)) this.fail(e, pos, `map keys cannot be ${fmt(key)}`);
          keys.push(key);
          values.push(sub(entry.value));
        }
        return T.map(join(keys), join(values));
      }
      case 'comprehensionExpr': {
        const c = k.value;
        const range = sub(c.iterRange);
        let v1: CheckType;
        let v2: CheckType | undefined;
        if (range.k === 'list') [v1, v2] = c.iterVar2 === '' ? [range.e, undefined] : [T.int, range.e];
        else if (range.k === 'map') [v1, v2] = c.iterVar2 === '' ? [range.key, undefined] : [range.key, range.v];
        else if (range.k === 'dyn') [v1, v2] = [T.dyn, c.iterVar2 === '' ? undefined : T.dyn];
        else return this.fail(e, pos, `cannot iterate over ${fmt(range)}`);
        const accuInit = sub(c.accuInit);
        const scope = new Map<string, CheckType>([[c.accuVar, accuInit.k === 'list' ? T.list(T.dyn) : accuInit]]);
        scope.set(c.iterVar, v1);
        if (v2 !== undefined) scope.set(c.iterVar2, v2);
        this.scopes.push(scope);
        try {
          const cond = sub(c.loopCondition);
          if (!assignable(T.bool, cond)) this.fail(e, pos, `loop condition must be bool, not ${fmt(cond)}`);
          sub(c.loopStep);
          return sub(c.result);
        } finally {
          this.scopes.pop();
        }
      }
      default:
        return this.fail(e, pos, 'unsupported expression');
    }
  }

  private call(e: Expr, c: Extract<Expr['exprKind'], { case: 'callExpr' }>['value'], pos: Record<string, number>, depth: number): CheckType {
    const sub = (x: Expr): CheckType => this.expr(x, pos, depth + 1);
    const args = c.args.map(sub);
    const receiver = c.target === undefined ? undefined : sub(c.target);
    const name = c.function;
    switch (name) {
      case '_&&_':
      case '_||_':
      case '!_':
      case '@not_strictly_false':
        for (const a of args) if (!assignable(T.bool, a)) this.fail(e, pos, `operator '${name.replace(/[_@]/g, '')}' needs bool operands, not ${fmt(a)}`);
        return T.bool;
      case '_?_:_': {
        const [cond, a, b] = args;
        if (cond === undefined || a === undefined || b === undefined) return this.fail(e, pos, 'malformed conditional');
        if (!assignable(T.bool, cond)) this.fail(e, pos, `condition must be bool, not ${fmt(cond)}`);
        return join([a, b]);
      }
      case '_[_]': {
        const [container, index] = args;
        if (container === undefined || index === undefined) return this.fail(e, pos, 'malformed index');
        if (container.k === 'list') {
          if (!['int', 'uint', 'dyn'].includes(index.k)) this.fail(e, pos, `list index must be int, not ${fmt(index)}`);
          return container.e;
        }
        if (container.k === 'map') {
          if (!assignable(container.key, index)) this.fail(e, pos, `map key must be ${fmt(container.key)}, not ${fmt(index)}`);
          return container.v;
        }
        if (container.k === 'dyn') return T.dyn;
        return this.fail(e, pos, `type '${fmt(container)}' cannot be indexed`);
      }
      case '_[?_]':
      case '_?._':
        return this.fail(e, pos, 'optional access is not supported');
    }
    if (name === 'matches') {
      const pattern = c.args[0]?.exprKind;
      if (pattern?.case === 'constExpr' && pattern.value.constantKind.case === 'stringValue') {
        // A constant regular expression is compiled now (RE2 syntax) so a typo fails at upload.
        try {
          compileRegex(pattern.value.constantKind.value);
        } catch (err) {
          this.fail(e, pos, `invalid regular expression: ${String((err as Error).message).slice(0, 200)}`);
        }
      }
    }
    const candidates = this.overloads.get(name);
    if (candidates === undefined) return this.fail(e, pos, `undeclared reference to function '${name}'`);
    const matching = candidates.filter(
      (o) =>
        (o.receiver === undefined) === (receiver === undefined) &&
        (o.receiver === undefined || receiver === undefined || assignable(o.receiver, receiver)) &&
        o.args.length === args.length &&
        o.args.every((p, i) => assignable(p, args[i] ?? T.dyn)),
    );
    if (matching.length === 0) {
      const shown = `${receiver === undefined ? '' : `${fmt(receiver)}.`}${name.replace(/^_|_$/g, '').replace(/^@/, '')}(${args.map(fmt).join(', ')})`;
      return this.fail(e, pos, `no matching overload for ${shown}`);
    }
    return join(matching.map((o) => o.result));
  }
}

/** Whether a rule result of type `t` may be used where `want` is required. */
export function resultAssignable(want: CheckType, t: CheckType): boolean {
  return assignable(want, t);
}
