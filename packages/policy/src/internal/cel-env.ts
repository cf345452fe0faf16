import { celEnv, type CelEnv } from '@bufbuild/cel';
import { strings } from '@bufbuild/cel/ext';
import { RE2JS } from '@bufbuild/re2';
import { budgetedFunctions } from './cel-budget.js';

// @bufbuild/cel compiles the pattern of every `matches` call on every evaluation; policies use a
// handful of constant patterns, so compiled ones are cached (bounded: patterns built from input
// could otherwise grow it). RE2 matching is linear-time, so no pattern can make a match hang.
const MAX_CACHED_PATTERNS = 512;
const cache = new Map<string, RE2JS>();

/** Compile an RE2 pattern (throws on bad syntax), reusing a cached compilation. */
export function compileRegex(pattern: string): RE2JS {
  let re = cache.get(pattern);
  if (re === undefined) {
    re = RE2JS.compile(pattern);
    if (cache.size >= MAX_CACHED_PATTERNS) cache.clear();
    cache.set(pattern, re);
  }
  return re;
}

/**
 * Every policy runs in this environment: the CEL standard library plus the strings extension, with
 * every function that builds strings, bytes or lists replaced by a budgeted one (cel-budget.ts).
 */
export const policyEnv: CelEnv = celEnv({ funcs: budgetedFunctions(celEnv({ funcs: strings, re2: { compile: compileRegex } }).funcs) });
