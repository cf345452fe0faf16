import { createCipheriv, randomBytes } from 'node:crypto';
import fc from 'fast-check';
import { OcicryptError } from '../errors.js';
import { decodeKeyProviderInput, decodeKeyProviderOutput, encodeKeyProviderInput } from '../keyprovider-protocol.js';
import { encodePrivateOptions, encodePublicOptions, parsePrivateOptions, parsePublicOptions } from '../layer/options.js';
import { decodeUnverifiedAnnotationPacket, unwrapAnnotationPacket, wrapAnnotationPacket } from './annotation-packet.js';
import { splitKeysAnnotation } from './types.js';

/**
 * Fuzz properties (issue 12) for ocicrypt's parsers of untrusted image data: CoCo annotation
 * packets (decode, and unwrap with the right KEK), key-provider protocol messages, the keys
 * annotation and layer options. Only OcicryptError escapes, and an altered A256GCM packet never
 * unwraps to anything but the original options. Seeds are made here, then mutated.
 */

const kek = randomBytes(32);
const opts = encodePrivateOptions({ symkey: randomBytes(32), digest: `sha256:${'ab'.repeat(32)}`, nonce: randomBytes(16) });
const kid = 'kbs:///default/image-kek/app1';
const v1 = Buffer.from(wrapAnnotationPacket(opts, { kid, kek }));
const v2 = Buffer.from(wrapAnnotationPacket(opts, { kid, kek, packetVersion: 2 }));
const ctr = (() => {
  const iv = randomBytes(16);
  const c = createCipheriv('aes-256-ctr', kek, iv);
  const wrapped = Buffer.concat([c.update(opts), c.final()]);
  return Buffer.from(JSON.stringify({ kid, wrapped_data: wrapped.toString('base64'), iv: iv.toString('base64'), wrap_type: 'A256CTR' }));
})();
const request = encodeKeyProviderInput({ op: 'keyunwrap', keywrapparams: { ec: null, optsdata: null }, keyunwrapparams: { dc: { Parameters: { attestation: [Buffer.from('x')] } }, annotation: v1 } });
const reply = Buffer.from(JSON.stringify({ keyunwrapresults: { optsdata: opts.toString('base64') } }));
const pubopts = encodePublicOptions({ cipher: 'AES_256_CTR_HMAC_SHA256', hmac: randomBytes(32) });

type Edit = { kind: 'flip' | 'set' | 'cut' | 'insert' | 'dup'; at: number; value: number; text: string };
const edit: fc.Arbitrary<Edit> = fc.record({
  kind: fc.constantFrom('flip', 'set', 'cut', 'insert', 'dup'),
  at: fc.nat(),
  value: fc.nat(0xffff),
  text: fc.oneof(fc.string({ maxLength: 8 }), fc.constantFrom('"', ',', '{}', '[]', 'null', '1e999', '"A256CTR"', '"kbs://x"', 'A'.repeat(64), '-', '\\u0000')),
});

/** Character edits of a JSON seed: flipped bits, replaced characters, cuts, insertions, duplicated spans. */
function applyText(seed: string, edits: readonly Edit[]): string {
  let s = seed;
  for (const e of edits) {
    if (s.length === 0) break;
    const at = e.at % s.length;
    if (e.kind === 'flip') s = s.slice(0, at) + String.fromCharCode(s.charCodeAt(at) ^ (1 << (e.value % 7))) + s.slice(at + 1);
    else if (e.kind === 'set') s = s.slice(0, at) + String.fromCharCode(e.value & 0x7f) + s.slice(at + 1);
    else if (e.kind === 'cut') s = s.slice(0, at);
    else if (e.kind === 'insert') s = s.slice(0, at) + e.text + s.slice(at);
    else s = s.slice(0, at) + s.slice(at, at + (e.value % 300)) + s.slice(at);
  }
  return s;
}

/** The seed JSON with one member replaced by an arbitrary JSON value. */
const replaced = (seed: Buffer): fc.Arbitrary<Buffer> =>
  fc.tuple(fc.constantFrom(...Object.keys(JSON.parse(seed.toString()) as object), 'extra'), fc.jsonValue({ maxDepth: 3 })).map(([k, v]) => Buffer.from(JSON.stringify({ ...(JSON.parse(seed.toString()) as object), [k]: v })));

const messages = (...seeds: Buffer[]): fc.Arbitrary<Buffer> =>
  fc.oneof(
    { weight: 4, arbitrary: fc.tuple(fc.constantFrom(...seeds), fc.array(edit, { minLength: 1, maxLength: 5 })).map(([s, es]) => Buffer.from(applyText(s.toString('latin1'), es), 'latin1')) },
    { weight: 2, arbitrary: fc.constantFrom(...seeds).chain(replaced) },
    fc.uint8Array({ maxLength: 300 }).map((b) => Buffer.from(b)),
  );

function typedOnly<T>(fn: () => T): T | undefined {
  try {
    return fn();
  } catch (err) {
    if (err instanceof OcicryptError) return undefined;
    throw err;
  }
}

/** What `pnpm fuzz` (scripts/fuzz.ts) runs for as long as asked, and vitest 200 cases of. */
export type FuzzProperty = { readonly name: string; readonly property: fc.IRawProperty<any, boolean> };

export const properties: readonly FuzzProperty[] = [
  {
    name: 'ocicrypt: annotation packet decoding throws only OcicryptError',
    property: fc.property(messages(v1, v2, ctr), (b) => void typedOnly(() => decodeUnverifiedAnnotationPacket(b))),
  },
  {
    name: 'ocicrypt: annotation packet unwrap throws only OcicryptError; an altered A256GCM packet gives nothing new',
    property: fc.asyncProperty(messages(v1, v2), async (b) => {
      let out: Uint8Array | undefined;
      try {
        out = await unwrapAnnotationPacket(b, async () => Buffer.from(kek));
      } catch (err) {
        if (err instanceof OcicryptError) return;
        throw err;
      }
      // SECURITY property: GCM authenticates, so any packet that unwraps yields exactly the wrapped options.
      if (!Buffer.from(out).equals(opts)) throw new Error('an altered A256GCM packet unwrapped to other data');
    }),
  },
  {
    name: 'ocicrypt: key-provider messages, keys annotations and layer options throw only OcicryptError',
    property: fc.property(messages(request, reply, opts, pubopts), fc.string({ maxLength: 200 }), (b, annotation) => {
      typedOnly(() => decodeKeyProviderInput(b));
      typedOnly(() => decodeKeyProviderOutput(b));
      typedOnly(() => parsePrivateOptions(b));
      typedOnly(() => parsePublicOptions(b.toString('base64')));
      typedOnly(() => parsePublicOptions(b.toString('latin1')));
      typedOnly(() => splitKeysAnnotation(`${annotation},${b.toString('base64')}`, 1024));
    }),
  },
];

if (process.env['VITEST'] !== undefined) {
  const { describe, expect, it } = await import('vitest');
  describe('fuzz: ocicrypt packets and messages', () => {
    it('the seeds decode and unwrap', async () => {
      for (const p of [v1, v2, ctr]) expect(Buffer.from(await unwrapAnnotationPacket(p, async () => Buffer.from(kek))).equals(opts)).toBe(true);
      expect(decodeKeyProviderInput(request).op).toBe('keyunwrap');
    });
    for (const p of properties) it(p.name, () => fc.assert(p.property, { numRuns: 200 }));
  });
}
