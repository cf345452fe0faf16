import { createHash } from 'node:crypto';
import fc from 'fast-check';
import { ProtocolError } from './errors.js';
import { MAX_INIT_DATA_BYTES, parseInitData } from './init-data.js';

/**
 * Fuzz property (issue 12) for init-data: for any TOML body (generated from TOML's grammar, mutated
 * from a CoCo init-data document, deeply nested, or arbitrary text), parseInitData throws only
 * ProtocolError, and what it accepts is hashed over the exact body bytes.
 */

const SEED = `version = "0.1.0"
algorithm = "sha384"

[data]
"aa.toml" = '''
[token_configs]
[token_configs.coco_as]
url = 'http://127.0.0.1:8080'
'''
workload_id = "spiffe://example.org/ns/default/sa/app"
policy.rego = """
package agent_policy
default AddARPNeighborsRequest := true
"""
limits = { cpu = 2, memory = 4.5e9, tags = ["a", "b", 0x1f, 1979-05-27T07:32:00Z] }

[[data.layers]]
digest = "sha256:abcd"
`;

const key = fc.oneof(fc.stringMatching(/^[A-Za-z0-9_-]{1,8}$/), fc.string({ maxLength: 8 }).map((s) => JSON.stringify(s)), fc.constantFrom('a.b', '"x".y', "'lit'"));
const scalar = fc.oneof(
  fc.string({ maxLength: 12 }).map((s) => JSON.stringify(s)),
  fc.constantFrom('"""\nmulti\\\nline"""', "'''raw'''", '"\\u00e9\\U0001F600\\x"', 'inf', '-nan', '1_000', '0o17', '0b101', '+1.5e-3', 'true', 'false', '1979-05-27', '07:32:00', '1979-05-27T00:32:00.999-07:00', '9'.repeat(30)),
  fc.integer().map(String),
  fc.double({ noNaN: true }).map(String),
);
const value: fc.Arbitrary<string> = fc.letrec((tie) => ({
  v: fc.oneof({ depthSize: 'small', withCrossShrink: true }, scalar, fc.array(tie('v'), { maxLength: 4 }).map((xs) => `[${xs.join(', ')}]`), fc.array(fc.tuple(key, tie('v')), { maxLength: 3 }).map((kv) => `{ ${kv.map(([k, v]) => `${k} = ${v}`).join(', ')} }`)),
})).v;
const line = fc.oneof(
  { weight: 5, arbitrary: fc.tuple(key, value).map(([k, v]) => `${k} = ${v}`) },
  fc.array(key, { minLength: 1, maxLength: 3 }).map((ks) => `[${ks.join('.')}]`),
  fc.array(key, { minLength: 1, maxLength: 3 }).map((ks) => `[[${ks.join('.')}]]`),
  fc.constantFrom('algorithm = "sha512"', 'algorithm = "md5"', 'algorithm = 3', 'version = 1', '[data]', 'data = 5', '# comment', ''),
);
const grammar = fc.array(line, { maxLength: 12 }).map((ls) => ls.join('\n'));
const nested = fc.tuple(fc.constantFrom('[', '{ a = ', 'a = [', '[['), fc.integer({ min: 100, max: 20_000 })).map(([open, depth]) => `x = ${open.repeat(depth)}1`);
const mutated = fc.tuple(fc.array(fc.tuple(fc.nat(), fc.nat(0x2ff), fc.constantFrom('cut', 'set', 'insert')), { minLength: 1, maxLength: 5 })).map(([edits]) => {
  let s = SEED;
  for (const [at, ch, kind] of edits) {
    const i = at % Math.max(1, s.length);
    if (kind === 'cut') s = s.slice(0, i);
    else if (kind === 'set') s = s.slice(0, i) + String.fromCharCode(ch) + s.slice(i + 1);
    else s = s.slice(0, i) + String.fromCharCode(ch) + s.slice(i);
  }
  return s;
});
const bodies = fc.oneof({ weight: 3, arbitrary: grammar }, { weight: 3, arbitrary: mutated }, nested, fc.string({ unit: 'binary', maxLength: 200 }), fc.constant('a = 1\n'.repeat(MAX_INIT_DATA_BYTES / 6 + 1)));
const ALG = { sha256: 'sha256', sha384: 'sha384', sha512: 'sha512' } as const;

/** What `pnpm fuzz` (scripts/fuzz.ts) runs for as long as asked, and vitest 200 cases of. */
export type FuzzProperty = { readonly name: string; readonly property: fc.IRawProperty<any, boolean> };

export const properties: readonly FuzzProperty[] = [
  {
    name: 'protocol: init-data TOML parsing throws only ProtocolError and hashes the exact body',
    property: fc.property(bodies, fc.constantFrom('toml', 'json', ''), (body, format) => {
      let parsed: ReturnType<typeof parseInitData>;
      try {
        parsed = parseInitData({ format, body });
      } catch (err) {
        if (err instanceof ProtocolError) return;
        throw err;
      }
      const want = createHash(ALG[parsed.algorithm]).update(Buffer.from(body, 'utf8')).digest();
      if (format !== 'toml' || !want.equals(parsed.digest)) throw new Error('accepted a non-TOML format or hashed other bytes than the body');
    }),
  },
];

if (process.env['VITEST'] !== undefined) {
  const { describe, expect, it } = await import('vitest');
  describe('fuzz: init-data', () => {
    it('the seed parses', () => {
      expect(parseInitData({ format: 'toml', body: SEED })).toMatchObject({ algorithm: 'sha384', version: '0.1.0' });
    });
    for (const p of properties) it(p.name, () => fc.assert(p.property, { numRuns: 200 }));
  });
}
