import type { CelInput } from '@bufbuild/cel';
import { PolicyError } from '../errors.js';

// Bounds on what one evaluation may be given (claims and tokens are partly node-controlled).
const MAX_DEPTH = 32;
const MAX_NODES = 100_000;
const MAX_STRING_CHARS = 1024 * 1024;

/**
 * Convert a JSON-like value into CEL input: objects become maps with string keys, integral numbers
 * become CEL `int` (so `claims.x == 2` compares ints), other numbers `double`. Anything else
 * (functions, symbols, class instances other than Uint8Array) is refused.
 */
export function toCelInput(value: unknown): CelInput {
  let nodes = 0;
  const walk = (v: unknown, depth: number): CelInput => {
    // SECURITY: bounds recursion and total size of node-supplied claims (stack and memory exhaustion).
    if (depth > MAX_DEPTH) throw new PolicyError('POLICY_INPUT_INVALID', `input nests deeper than ${MAX_DEPTH} levels`);
    if (++nodes > MAX_NODES) throw new PolicyError('POLICY_INPUT_INVALID', `input has more than ${MAX_NODES} values`);
    if (v === null || typeof v === 'boolean' || typeof v === 'bigint') return v;
    if (typeof v === 'string') {
      if (v.length > MAX_STRING_CHARS) throw new PolicyError('POLICY_INPUT_INVALID', 'input string too long');
      return v;
    }
    if (typeof v === 'number') {
      if (!Number.isFinite(v)) throw new PolicyError('POLICY_INPUT_INVALID', 'input numbers must be finite');
      return Number.isSafeInteger(v) ? BigInt(v) : v;
    }
    if (v instanceof Uint8Array) return v;
    if (Array.isArray(v)) return v.map((x) => walk(x, depth + 1));
    if (typeof v === 'object' && (Object.getPrototypeOf(v) === Object.prototype || Object.getPrototypeOf(v) === null)) {
      const m = new Map<string, CelInput>();
      for (const [k, x] of Object.entries(v)) if (x !== undefined) m.set(k, walk(x, depth + 1));
      return m;
    }
    throw new PolicyError('POLICY_INPUT_INVALID', `input contains a ${typeof v} value that is not JSON`);
  };
  return walk(value, 0);
}
