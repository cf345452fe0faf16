import { createHash } from 'node:crypto';
import fc from 'fast-check';
import { EventLogError } from '../eventlog/errors.js';
import { appraiseIma } from './appraise.js';
import { parseImaLog } from './parse.js';
import { replayIma } from './replay.js';
import { convertLegacyAllowlist, parseRuntimePolicy } from './runtime-policy.js';

/**
 * Fuzz properties (issue 12) for IMA: the ASCII measurement list parser (with replay and appraisal
 * of what parses) and the Keylime runtime policy parser (JSON values and legacy allowlists) throw
 * only EventLogError for any input. Seeds are generated measurement lines of every template
 * (ima, ima-ng, ima-sig, ima-buf) and a runtime policy, then mutated.
 */

const le32 = (n: number): Buffer => {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(n);
  return b;
};
const sha = (alg: string, data: Buffer | string): Buffer => createHash(alg).update(data).digest();

function ngLine(template: 'ima-ng' | 'ima-sig' | 'ima-buf', digest: Buffer, name: string, tail?: Buffer): string {
  const alg = Buffer.from('sha256:\0');
  const parts = [le32(alg.length + digest.length), alg, digest, le32(Buffer.byteLength(name) + 1), Buffer.from(name), Buffer.alloc(1)];
  if (template !== 'ima-ng') parts.push(le32(tail?.length ?? 0), tail ?? Buffer.alloc(0));
  const fields = `sha256:${digest.toString('hex')} ${name}${template === 'ima-ng' ? '' : ` ${(tail ?? Buffer.alloc(0)).toString('hex')}`}`;
  return `10 ${sha('sha1', Buffer.concat(parts)).toString('hex')} ${template} ${fields}`;
}

function legacyLine(name: string): string {
  const digest = sha('sha1', name);
  const field = Buffer.alloc(256);
  field.write(name);
  return `10 ${sha('sha1', Buffer.concat([digest, field])).toString('hex')} ima ${digest.toString('hex')} ${name}`;
}

const files = ['/usr/bin/bash', '/usr/lib/libc.so.6', '/tmp/with space'];
const lines = [
  ngLine('ima-ng', sha('sha256', 'boot'), 'boot_aggregate'),
  ...files.map((f) => ngLine('ima-ng', sha('sha256', f), f)),
  ngLine('ima-sig', sha('sha256', 'sig'), '/usr/bin/signed', Buffer.from('030204aabbccdd0004deadbeef', 'hex')),
  ngLine('ima-buf', sha('sha256', Buffer.from('3082', 'hex')), '.ima', Buffer.from('3082', 'hex')),
  legacyLine('/usr/sbin/init'),
];
const logText = `${lines.join('\n')}\n`;
const policyDoc = {
  meta: { version: 1 },
  digests: Object.fromEntries(files.map((f) => [f, [sha('sha256', f).toString('hex')]])),
  excludes: ['/tmp/.*', 'boot_aggregate'],
  keyrings: { '.ima': [sha('sha256', Buffer.from('3082', 'hex')).toString('hex')] },
  ima: { ignored_keyrings: [], log_hash_alg: 'sha1', dm_policy: null },
  'ima-buf': {},
  'verification-keys': '',
};

type Edit = { kind: 'flip' | 'set' | 'cut' | 'insert' | 'dup'; at: number; value: number; text: string };
const edit: fc.Arbitrary<Edit> = fc.record({
  kind: fc.constantFrom('flip', 'set', 'cut', 'insert', 'dup'),
  at: fc.nat(),
  value: fc.nat(0xffff),
  text: fc.oneof(fc.string({ maxLength: 8 }), fc.constantFrom(' ', '\n', ':', '\0', 'sha256:', 'ima-sig', '9'.repeat(12), 'ff'.repeat(40))),
});

/** Character edits of a text seed: flipped bits, replaced characters, cuts, insertions, duplicated spans. */
function applyText(seed: string, edits: readonly Edit[]): string {
  let s = seed;
  for (const e of edits) {
    if (s.length === 0) break;
    const at = e.at % s.length;
    if (e.kind === 'flip') s = s.slice(0, at) + String.fromCharCode(s.charCodeAt(at) ^ (1 << (e.value % 7))) + s.slice(at + 1);
    else if (e.kind === 'set') s = s.slice(0, at) + String.fromCharCode(e.value) + s.slice(at + 1);
    else if (e.kind === 'cut') s = s.slice(0, at);
    else if (e.kind === 'insert') s = s.slice(0, at) + e.text + s.slice(at);
    else s = s.slice(0, at) + s.slice(at, at + (e.value % 200)) + s.slice(at);
  }
  return s;
}

const texts = (seed: string): fc.Arbitrary<string> =>
  fc.oneof({ weight: 4, arbitrary: fc.tuple(fc.constant(seed), fc.array(edit, { minLength: 1, maxLength: 6 })).map(([s, es]) => applyText(s, es)) }, fc.string({ maxLength: 300 }));

/** A JSON value near the policy: the seed with one subtree replaced by an arbitrary JSON value. */
const policies: fc.Arbitrary<unknown> = fc.oneof(
  fc.tuple(fc.constantFrom('meta', 'digests', 'excludes', 'keyrings', 'ima', 'ima-buf', 'verification-keys', 'extra'), fc.jsonValue({ maxDepth: 3 })).map(([k, v]) => ({ ...policyDoc, [k]: v })),
  fc.tuple(fc.string({ maxLength: 12 }), fc.array(fc.oneof(fc.string({ maxLength: 70 }), fc.constant('ab'.repeat(32))), { maxLength: 3 })).map(([k, v]) => ({ ...policyDoc, digests: { [k]: v } })),
  texts(JSON.stringify(policyDoc)).map((t) => {
    try {
      return JSON.parse(t) as unknown;
    } catch {
      return t;
    }
  }),
  fc.anything({ maxDepth: 3 }),
);

function typedOnly(fn: () => void): void {
  try {
    fn();
  } catch (err) {
    if (!(err instanceof EventLogError)) throw err;
  }
}

const basePolicy = parseRuntimePolicy(policyDoc);

/** What `pnpm fuzz` (scripts/fuzz.ts) runs for as long as asked, and vitest 200 cases of. */
export type FuzzProperty = { readonly name: string; readonly property: fc.IRawProperty<any, boolean> };

export const properties: readonly FuzzProperty[] = [
  {
    name: 'verifier: IMA measurement list parse, replay and appraisal throw only EventLogError',
    property: fc.property(texts(logText), (text) =>
      typedOnly(() => {
        const entries = parseImaLog(text, { maxEntries: 10_000 });
        replayIma(entries, { bank: 'sha256' });
        appraiseIma(entries, basePolicy);
      }),
    ),
  },
  {
    name: 'verifier: IMA runtime policy and legacy allowlist parsing throw only EventLogError',
    property: fc.property(policies, texts('ab'.repeat(32) + '  /usr/bin/x\n' + 'cd'.repeat(20) + ' /etc/y\n'), (policy, allowlist) => {
      typedOnly(() => {
        const p = parseRuntimePolicy(policy);
        appraiseIma(parseImaLog(logText), p);
      });
      typedOnly(() => void parseRuntimePolicy(convertLegacyAllowlist(allowlist)));
    }),
  },
];

if (process.env['VITEST'] !== undefined) {
  const { describe, expect, it } = await import('vitest');
  describe('fuzz: IMA', () => {
    it('the seeds parse and appraise', () => {
      expect(appraiseIma(parseImaLog(logText), basePolicy).appraised).toBeGreaterThan(0);
    });
    for (const p of properties) it(p.name, () => fc.assert(p.property, { numRuns: 200 }));
  });
}
