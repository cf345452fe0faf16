import fc from 'fast-check';
import { compileAttestationPolicy, compilePolicy, compileResourcePolicy } from './compile.js';
import { DEFAULT_ATTESTATION_POLICY } from './defaults.js';
import { PolicyError } from './errors.js';
import { evaluateAttestationPolicy } from './evaluate-attestation.js';
import { evaluateResourcePolicy } from './evaluate-resource.js';

/**
 * Fuzz properties (issue 12) for CEL policy upload and evaluation: for any document (rules built
 * from CEL's grammar — variables, literals, operators, macros, functions, deep nesting — mutated
 * built-in rules, arbitrary text, arbitrary JSON), compiling throws only PolicyError; a rule that
 * compiles evaluates on arbitrary token claims without throwing anything but PolicyError, within
 * its budget, and releases only on `true`.
 */

const ident = fc.constantFrom('ear', 'input', 'submods', 'evidence', 'init_data_claims', 'repository', 'resource_path', 'resource_tag', 'query', 'plugin', 'x', 'claims');
const field = fc.constantFrom('status', '["ear.status"]', '.tpm', '.workload_id', '["resource-path"]', '.submods.cpu0', '[0]', '["a"]');
const literal = fc.oneof(
  fc.integer().map(String),
  fc.string({ maxLength: 8 }).map((s) => JSON.stringify(s)),
  fc.constantFrom('true', 'false', 'null', '1u', '2.5', 'b"\\x00"', 'r"^a+$"', '[1, 2, 3]', '{"a": 1}', '[]', '{}', '"affirming"', '18446744073709551615u', '-9223372036854775808'),
);
const expr: fc.Arbitrary<string> = fc.letrec((tie) => ({
  e: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    literal,
    fc.tuple(ident, fc.array(field, { maxLength: 2 })).map(([i, fs]) => i + fs.join('')),
    fc.tuple(tie('e'), fc.constantFrom('==', '!=', '<', '<=', '&&', '||', '+', '-', '*', '/', '%', 'in'), tie('e')).map(([a, op, b]) => `(${a} ${op} ${b})`),
    fc.tuple(fc.constantFrom('!', '-'), tie('e')).map(([op, a]) => `${op}${a}`),
    fc.tuple(tie('e'), tie('e'), tie('e')).map(([c, a, b]) => `(${c} ? ${a} : ${b})`),
    fc.tuple(tie('e'), fc.constantFrom('all', 'exists', 'exists_one', 'map', 'filter'), tie('e')).map(([r, m, body]) => `${r}.${m}(v, ${body})`),
    fc.tuple(tie('e'), fc.constantFrom('size()', 'startsWith("a")', 'matches("a|b")', 'lowerAscii()', 'split(",")', 'join("-")', 'replace("a", "bb")', 'contains("x")', 'substring(1)', 'charAt(0)', 'indexOf("a")', 'trim()', 'format([1])')).map(([r, m]) => `${r}.${m}`),
    fc.tuple(fc.constantFrom('size', 'string', 'int', 'uint', 'double', 'bytes', 'dyn', 'type', 'has', 'timestamp', 'duration'), tie('e')).map(([f, a]) => `${f}(${a})`),
    fc.tuple(tie('e'), tie('e')).map(([a, b]) => `[${a}, ${b}]`),
    fc.tuple(tie('e'), tie('e')).map(([k, v]) => `{${k}: ${v}}`),
  ),
})).e;
const mutatedDefault = fc
  .tuple(fc.constantFrom(...Object.values(DEFAULT_ATTESTATION_POLICY.rules.vector ?? {}), DEFAULT_ATTESTATION_POLICY.rules.status), fc.nat(), fc.string({ maxLength: 4 }), fc.nat(3))
  .map(([rule, at, text, cut]) => (cut === 0 ? rule.slice(0, at % rule.length) : rule.slice(0, at % rule.length) + text + rule.slice(at % rule.length)));
const deep = fc.tuple(fc.constantFrom('(', '[', '!', '-', 'size(', '{1: '), fc.integer({ min: 40, max: 3000 })).map(([open, n]) => `${open.repeat(n)}1`);
const rules = fc.oneof({ weight: 5, arbitrary: expr }, { weight: 2, arbitrary: mutatedDefault }, deep, fc.string({ maxLength: 60 }));

const documents = fc.oneof(
  { weight: 6, arbitrary: rules.map((rule) => ({ id: 'fuzz', type: 'cel', kind: 'resource', rule })) },
  { weight: 2, arbitrary: fc.tuple(rules, rules).map(([a, s]) => ({ id: 'fuzz', type: 'cel', kind: 'attestation', rules: { vector: { hardware: a }, status: s } })) },
  fc.jsonValue({ maxDepth: 3 }),
  fc.string({ maxLength: 80 }),
);
const claims = fc.record({ submods: fc.record({ cpu0: fc.dictionary(fc.constantFrom('ear.status', 'ear.veraison.annotated-evidence', 'x'), fc.jsonValue({ maxDepth: 3 })) }) }, { requiredKeys: [] });

function typedOnly<T>(fn: () => T): T | undefined {
  try {
    return fn();
  } catch (err) {
    if (err instanceof PolicyError) return undefined;
    throw err;
  }
}

const attestationInput = { claims: { tpm: { pcr00: 'ab'.repeat(32), ak_public: 'k' } }, reference: { pcr00: ['ab'.repeat(32)] }, tee: 'tpm' };

/** What `pnpm fuzz` (scripts/fuzz.ts) runs for as long as asked, and vitest 200 cases of. */
export type FuzzProperty = { readonly name: string; readonly property: fc.IRawProperty<any, boolean> };

export const properties: readonly FuzzProperty[] = [
  {
    name: 'policy: CEL upload (compile) throws only PolicyError',
    property: fc.property(documents, (doc) => void typedOnly(() => compilePolicy(doc))),
  },
  {
    name: 'policy: compiled CEL rules evaluate within budget, throw only PolicyError, release only on true',
    property: fc.property(rules, claims, (rule, tokenClaims) => {
      // A smaller budget than the default keeps each case fast; bombs are stopped all the same.
      const limits = { maxEvaluationCost: 10_000 };
      const resource = typedOnly(() => compileResourcePolicy({ id: 'fuzz', type: 'cel', kind: 'resource', rule }, { limits }));
      if (resource !== undefined) {
        const d = typedOnly(() => evaluateResourcePolicy(resource, { tokenClaims, resourcePath: 'repo/type/tag' }));
        if (d !== undefined && d.allow !== (d.reason === undefined)) throw new Error('a decision allowed with a reason, or denied without one');
      }
      const attestation = typedOnly(() => compileAttestationPolicy({ id: 'fuzz', type: 'cel', kind: 'attestation', rules: { vector: { hardware: rule }, status: '"affirming"' } }, { limits }));
      if (attestation !== undefined) typedOnly(() => evaluateAttestationPolicy(attestation, attestationInput));
    }),
  },
];

if (process.env['VITEST'] !== undefined) {
  const { describe, it } = await import('vitest');
  describe('fuzz: CEL policies', () => {
    for (const p of properties) it(p.name, () => fc.assert(p.property, { numRuns: 200 }));
  });
}
