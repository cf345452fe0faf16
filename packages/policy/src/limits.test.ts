import { celList } from '@bufbuild/cel';
import { strings } from '@bufbuild/cel/ext';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { compileAttestationPolicy, compilePolicy, compileResourcePolicy } from './compile.js';
import { DEFAULT_ATTESTATION_POLICY, DEFAULT_RESOURCE_POLICY } from './defaults.js';
import { createPolicyEngine } from './engine.js';
import { PolicyCompileError, PolicyError } from './errors.js';
import { evaluateAttestationPolicy } from './evaluate-attestation.js';
import { evaluateResourcePolicy } from './evaluate-resource.js';
import { DEFAULT_POLICY_LIMITS, resolvePolicyLimits, type PolicyLimits } from './limits.js';
import { LINEAR_IMPLEMENTATIONS } from './internal/cel-budget.js';
import { createMemoryPolicyStore } from './store.js';

const resource = (rule: string) => ({ id: 'p', type: 'cel', kind: 'resource', rule });
const tokenClaims = { submods: { cpu0: { 'ear.status': 'affirming' } } };
const lit = (n: number): string => `[${Array.from({ length: n }, (_, i) => i).join(',')}]`;
/** A list the static estimate cannot size (a concatenation, not a literal). */
const opaque = (n: number): string => `(${lit(n)} + [${n}])`;

function compileIssue(doc: unknown, limits?: Partial<PolicyLimits>) {
  try {
    compilePolicy(doc, limits === undefined ? {} : { limits });
  } catch (e) {
    expect(e).toBeInstanceOf(PolicyCompileError);
    return (e as PolicyCompileError).issues[0]!;
  }
  throw new Error('expected a compile error');
}

function decide(rule: string, limits?: Partial<PolicyLimits>, claims: Record<string, unknown> = tokenClaims) {
  const p = compileResourcePolicy(resource(rule), limits === undefined ? {} : { limits });
  return evaluateResourcePolicy(p, { tokenClaims: claims, resourcePath: 'repo/key/1' });
}

describe('static limits at upload', () => {
  it('accepts the built-in policies and a realistic SPIFFE rule', () => {
    expect(() => compileAttestationPolicy(DEFAULT_ATTESTATION_POLICY)).not.toThrow();
    expect(() => compileResourcePolicy(DEFAULT_RESOURCE_POLICY)).not.toThrow();
    expect(() => compileResourcePolicy(resource('ear.status == "affirming" && init_data_claims.workload_id.matches(r"^spiffe://example\\.org/ns/[a-z0-9-]+/sa/[a-z0-9-]+$")'))).not.toThrow();
  });

  it('refuses a rule with too many AST nodes, too deep an AST, or comprehensions nested too deep, with the position', () => {
    const wide = compileIssue(resource(`${Array.from({ length: 600 }, (_, i) => `repository == "r${i}"`).join(' || ')}`));
    expect(wide).toMatchObject({ rule: 'rule', line: 1, column: 1 });
    expect(wide.message).toMatch(/^rule has \d+ AST nodes, above the limit of 2048$/);

    const deep = compileIssue(resource(`${'(1 + '.repeat(60)}1${')'.repeat(60)} > 0`));
    expect(deep.message).toBe('expression nests deeper than 48 levels');
    expect(deep.column).toBeGreaterThan(40 * 5);

    const nested = compileIssue(resource('[1].all(a, [2].all(b, [3].all(c,\n  [4].all(d, a + b + c + d > 0))))'));
    expect(nested).toMatchObject({ rule: 'rule', line: 2, message: 'comprehensions nest deeper than 3 levels' });
    expect(() => compileResourcePolicy(resource('[1].all(a, [2].all(b, [3].all(c, a + b + c > 0)))'))).not.toThrow();
    // A comprehension over another's result (not in its body) does not multiply work: not nesting.
    expect(() => compileResourcePolicy(resource('[1].map(a, a).map(b, b).map(c, c).map(d, d).size() == 1'))).not.toThrow();
  });

  it('refuses deep bracket nesting and oversized rules before parsing them (the parser is superlinear in nesting)', () => {
    for (const open of ['(', '[', '{1: ', '[1, ', 'size(']) {
      const issue = compileIssue(resource(`${open.repeat(400)}1`));
      expect(issue.message).toBe('expression nests deeper than 48 levels');
      expect(issue.offset).toBe(48 * open.length + open.search(/[([{]/));
    }
    expect(compileIssue(resource(`${'1+'.repeat(4500)}1 > 0`)).message).toBe('rule has more than 2048 AST nodes (4502 tokens)');
    // Brackets inside string literals (escaped quotes, raw, triple-quoted) and comments do not count.
    const parens = '(['.repeat(60);
    const quoted = [`repository == "${parens}\\""`, `repository == r'${'{'.repeat(60)}\\'`, `repository == """${parens}"""`, `// ${parens}\n true`].join(' || ');
    expect(() => compileResourcePolicy(resource(quoted))).not.toThrow();
  });

  it('refuses a comprehension bomb over list literals whose cost is certain, naming the cost', () => {
    const bomb = compileIssue(resource(`${lit(50)}.map(a, ${lit(50)}.map(b, ${lit(50)}.map(c, a + b + c))).size() > 0`));
    expect(bomb.message).toMatch(/^rule needs at least \d+ cost units per evaluation, above the limit of 30000$/);
    // `all`/`exists` may stop at their first element: only one iteration is certain, so this passes upload...
    expect(() => compileResourcePolicy(resource(`${lit(50)}.all(a, ${lit(50)}.all(b, ${lit(50)}.all(c, a + b + c >= 0)))`))).not.toThrow();
    // ...and the limit is the configured one.
    expect(compileIssue(resource(`${lit(20)}.map(a, a).size() > 0`), { maxEvaluationCost: 50 }).message).toMatch(/above the limit of 50$/);
  });

  it('applies limits from the engine options to uploads, and stores nothing refused', async () => {
    const store = createMemoryPolicyStore();
    // The built-in policies must fit the limits too (the default attestation policy nests two comprehensions).
    expect(() => createPolicyEngine({ store, limits: { maxComprehensionNesting: 1 } })).toThrow(/comprehensions nest deeper than 1 levels/);
    const engine = createPolicyEngine({ store, limits: { maxComprehensionNesting: 2 } });
    await expect(engine.putResourcePolicy(resource('[1].all(a, [2].all(b, [3].all(c, a < b + c)))'))).rejects.toThrow(/comprehensions nest deeper than 2 levels/);
    expect(await engine.listPolicies()).toEqual([]);
    await engine.putResourcePolicy(resource('[1].all(a, [2].all(b, a < b))'));
    expect(await engine.listPolicies()).toHaveLength(1);
  });

  it('refuses bad limit values as programmer errors', () => {
    expect(() => resolvePolicyLimits({ maxEvaluationCost: 0 })).toThrow(TypeError);
    expect(() => resolvePolicyLimits({ maxEvaluationMs: -1 })).toThrow(TypeError);
    expect(resolvePolicyLimits({ maxEvaluationMs: 0 }).maxEvaluationMs).toBe(0);
    expect(() => resolvePolicyLimits({ maxAstDepth: 1.5 })).toThrow(TypeError);
    expect(() => resolvePolicyLimits({ bogus: 1 } as never)).toThrow(TypeError);
    expect(resolvePolicyLimits({ maxEvaluationMs: 7 })).toEqual({ ...DEFAULT_POLICY_LIMITS, maxEvaluationMs: 7 });
  });
});

describe('run-time budget: bombs that pass upload are stopped and deny', () => {
  // The wall-clock backstop is off by default; these bombs are stopped by the cost budget alone.
  const generousClock = {};

  it('stops nested comprehensions over lists the upload check cannot size', () => {
    const d = decide(`${opaque(100)}.map(a, ${opaque(100)}.map(b, ${opaque(100)}.map(c, a + b + c))).size() > 0`, generousClock);
    expect(d).toMatchObject({ allow: false, reason: 'policy rule was stopped: its cost exceeded 30000 units' });
  });

  it('denies even when an error-absorbing operator would turn the stopped part into true', () => {
    const bomb = `${opaque(100)}.exists(a, ${opaque(100)}.exists(b, ${opaque(100)}.exists(c, c < 0)))`;
    expect(decide(`${bomb} || true`, generousClock)).toMatchObject({ allow: false, reason: expect.stringMatching(/stopped: its cost exceeded/) });
    expect(decide(`true || ${bomb}`, generousClock)).toMatchObject({ allow: true });
    expect(decide(`${bomb} ? true : true`, generousClock).allow).toBe(false);
  });

  it('stops string growth before allocating it (replace, concatenation, join, format)', () => {
    // A cost budget out of reach, so that the size checks are what stops these.
    const generousClock = { maxEvaluationCost: 10_000_000 };
    // 10^10 characters are asked for; the size check runs before the string is built.
    const replace = `"aaaaaaaaaa"${'.replace("a", "aaaaaaaaaa")'.repeat(9)}.size() > 0`;
    expect(decide(replace, generousClock)).toMatchObject({ allow: false, reason: 'policy rule was stopped: it built a string or bytes value longer than 1048576' });
    const join = `${opaque(300)}.map(a, "${'x'.repeat(4000)}").join("").size() > 0`;
    expect(decide(join, generousClock).reason).toMatch(/longer than 1048576|cost exceeded/);
    const concat = `${opaque(300)}.map(a, "${'y'.repeat(4000)}").exists(s, (s + s + s + s + s + s + s + s).size() < 0)`;
    expect(decide(concat, { ...generousClock, maxStringLength: 16_000 }).reason).toMatch(/longer than 16000/);
    expect(decide(`"%s".format([${opaque(500)}.map(a, "${'z'.repeat(4000)}")]).size() > 0`, generousClock).allow).toBe(false);
  });

  it('stops list growth by concatenation', () => {
    const d = decide(`${opaque(200)}.map(a, ${opaque(200)}).map(l, l + l + l).size() > 0`, { maxEvaluationCost: 10_000_000, maxListLength: 500 });
    expect(d).toMatchObject({ allow: false, reason: 'policy rule was stopped: it built a list longer than 500' });
  });

  it('charges regular expressions by text x pattern, and equality by the whole nested value', () => {
    const text = 'ab'.repeat(2000);
    expect(decide(`${opaque(100)}.all(a, "${text}".matches("^(ab)*$"))`, generousClock).reason).toMatch(/cost exceeded/);
    const nested = { ...tokenClaims, deep: [Array.from({ length: 5000 }, (_, i) => ({ k: i }))] };
    expect(decide(`${opaque(50)}.all(a, input.deep == input.deep)`, generousClock, nested).reason).toMatch(/cost exceeded/);
    expect(decide(`${opaque(50)}.all(a, input.deep[0].exists(e, true))`, generousClock, nested).reason).toMatch(/cost exceeded/);
  });

  it('stops on the wall-clock backstop when the cost budget is set out of reach', () => {
    const d = decide(`${opaque(300)}.all(a, ${opaque(300)}.all(b, ${opaque(300)}.all(c, a + b + c >= 0)))`, { maxEvaluationCost: Number.MAX_SAFE_INTEGER, maxEvaluationMs: 1 });
    expect(d).toMatchObject({ allow: false, reason: 'policy rule was stopped: it ran longer than 1 ms' });
  });

  it('gives each evaluation its own budget: a bomb does not spill into the next evaluation', () => {
    expect(decide(`${opaque(100)}.all(a, ${opaque(100)}.all(b, ${opaque(100)}.all(c, c >= 0)))`, generousClock).allow).toBe(false);
    expect(decide('ear.status == "affirming"').allow).toBe(true);
    // Deterministic: the same rule and input give the same verdict every time.
    const rule = `${opaque(60)}.all(a, ${opaque(60)}.all(b, a + b >= 0))`;
    const verdicts = new Set(Array.from({ length: 5 }, () => decide(rule, { ...generousClock, maxEvaluationCost: 20_000 }).reason));
    expect(verdicts.size).toBe(1);
  });

  it('fails an attestation policy closed, naming the rule that was stopped', () => {
    const doc = {
      id: 'bomb',
      type: 'cel',
      kind: 'attestation',
      rules: { vector: { hardware: `${opaque(100)}.all(a, ${opaque(100)}.all(b, ${opaque(100)}.all(c, c >= 0))) ? 2 : 0` }, status: '"affirming"' },
    };
    const p = compileAttestationPolicy(doc, { limits: generousClock });
    let err: unknown;
    try {
      evaluateAttestationPolicy(p, { claims: { tpm: {} } });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(PolicyError);
    expect(err).toMatchObject({ code: 'POLICY_EVALUATION_FAILED', message: 'attestation policy bomb was stopped in rule vector.hardware: its cost exceeded 30000 units' });
  });
});

describe('linear string functions', () => {
  const original = (name: string, argc: number) => strings.find((f) => f.name === name && f.arguments.length === argc)!;
  const text = fc.string({ unit: fc.constantFrom('a', 'b', 'A', 'Z', 'z', '"', '\\', '\n', '\0', '\x07', '\t', 'é', ' '), maxLength: 24 });

  it("give @bufbuild/cel's results for replace, lowerAscii, upperAscii and strings.quote", () => {
    fc.assert(
      fc.property(text, text, text, fc.integer({ min: -2, max: 30 }), (s, from, to, n) => {
        const replace = LINEAR_IMPLEMENTATIONS['replace']!;
        expect(replace(s, [from, to])).toEqual(original('replace', 2).call(0, s, [from, to]));
        expect(replace(s, [from, to, BigInt(n)])).toEqual(original('replace', 3).call(0, s, [from, to, BigInt(n)]));
        expect(LINEAR_IMPLEMENTATIONS['lowerAscii']!(s, [])).toEqual(original('lowerAscii', 0).call(0, s, []));
        expect(LINEAR_IMPLEMENTATIONS['upperAscii']!(s, [])).toEqual(original('upperAscii', 0).call(0, s, []));
        expect(LINEAR_IMPLEMENTATIONS['strings.quote']!(s, [s])).toEqual(original('strings.quote', 1).call(0, undefined, [s]));
      }),
      { numRuns: 300 },
    );
    expect(celList(['a']).size).toBe(1);
  });
});
