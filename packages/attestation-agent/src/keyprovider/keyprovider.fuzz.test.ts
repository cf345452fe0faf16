import { randomBytes } from 'node:crypto';
import fc from 'fast-check';
import { decodeKeyProviderOutput, encodeKeyProviderInput, encodePrivateOptions, keyProviderAnnotation, wrapAnnotationPacket } from '@keyhold/ocicrypt';
import { formatResourcePath, type ResourcePath } from '@keyhold/protocol';
import { KeyProviderError } from './errors.js';
import { decodeBytesMessage, encodeBytesMessage } from './protobuf-bytes-message.js';
import { createUnwrapService } from './unwrap-service.js';

/**
 * Fuzz properties (issue 12) for the guest key provider's request parsing: the protobuf wire
 * decoder (gRPC bodies), the key-provider JSON message (gRPC payload and `cmd` stdin) and the keys
 * annotation of a layer. Only KeyProviderError escapes, and an altered request never unwraps to
 * anything but the wrapped options. The KEK comes from an in-memory source standing in for the KBS
 * (the KBS client is tested elsewhere); seeds are made here, then mutated.
 */

const KEK_PATH = 'default/image-kek/app1';
const kek = randomBytes(32);
const source = {
  async getResource(path: ResourcePath): Promise<Uint8Array> {
    if (formatResourcePath(path) !== KEK_PATH) throw new Error('unexpected resource');
    return Buffer.from(kek);
  },
};
const service = createUnwrapService(source);
const opts = encodePrivateOptions({ symkey: randomBytes(32), digest: `sha256:${'cd'.repeat(32)}`, nonce: randomBytes(16) });
const packet = Buffer.from(wrapAnnotationPacket(opts, { kid: `kbs:///${KEK_PATH}`, kek }));
const request = encodeKeyProviderInput({ op: 'keyunwrap', keywrapparams: { ec: null, optsdata: null }, keyunwrapparams: { dc: null, annotation: packet } });
const wire = encodeBytesMessage(request);

type Edit = { kind: 'flip' | 'set' | 'cut' | 'insert' | 'big'; at: number; value: number; bytes: Uint8Array };
const edit: fc.Arbitrary<Edit> = fc.record({ kind: fc.constantFrom('flip', 'set', 'cut', 'insert', 'big'), at: fc.nat(), value: fc.nat(255), bytes: fc.uint8Array({ maxLength: 12 }) });

/** Flipped bits, overwritten bytes, varint-sized 0xff runs (huge lengths), truncations and insertions. */
function apply(seed: Uint8Array, edits: readonly Edit[]): Buffer {
  let b = Buffer.from(seed);
  for (const e of edits) {
    if (b.length === 0) break;
    const at = e.at % b.length;
    if (e.kind === 'flip') b[at] = (b[at] as number) ^ (1 << (e.value & 7));
    else if (e.kind === 'set') b[at] = e.value;
    else if (e.kind === 'big') b.fill(0xff, at, Math.min(b.length, at + 1 + (e.value % 10)));
    else if (e.kind === 'cut') b = b.subarray(0, at);
    else b = Buffer.concat([b.subarray(0, at), e.bytes, b.subarray(at)]);
  }
  return b;
}

const mutatedFrom = (seed: Buffer): fc.Arbitrary<Buffer> =>
  fc.oneof({ weight: 4, arbitrary: fc.array(edit, { minLength: 1, maxLength: 5 }).map((es) => apply(seed, es)) }, fc.uint8Array({ maxLength: 300 }).map((b) => Buffer.from(b)));

async function typedOnly<T>(fn: () => Promise<T> | T): Promise<T | undefined> {
  try {
    return await fn();
  } catch (err) {
    if (err instanceof KeyProviderError) return undefined;
    throw err;
  }
}

/** What `pnpm fuzz` (scripts/fuzz.ts) runs for as long as asked, and vitest 200 cases of. */
export type FuzzProperty = { readonly name: string; readonly property: fc.IRawProperty<any, boolean> };

export const properties: readonly FuzzProperty[] = [
  {
    name: 'agent: key-provider protobuf body decoding throws only KeyProviderError',
    property: fc.property(mutatedFrom(wire), (b) => {
      try {
        decodeBytesMessage(b, 1 << 20);
      } catch (err) {
        if (!(err instanceof KeyProviderError)) throw err;
      }
    }),
  },
  {
    name: 'agent: key-provider requests throw only KeyProviderError and unwrap nothing but the wrapped options',
    property: fc.asyncProperty(mutatedFrom(request), async (msg) => {
      const reply = await typedOnly(() => service.handleMessage(msg));
      if (reply === undefined) return;
      // SECURITY property: whatever request was accepted, the key released is the one wrapped for it.
      const out = decodeKeyProviderOutput(reply).keyunwrapresults?.optsdata;
      if (out === undefined || out === null || !Buffer.from(out).equals(opts)) throw new Error('a request unwrapped to other data');
    }),
  },
  {
    name: 'agent: layer keys annotations throw only KeyProviderError',
    property: fc.asyncProperty(fc.oneof(mutatedFrom(packet).map((p) => p.toString('base64')), fc.string({ maxLength: 300 })), async (value) => {
      const out = await typedOnly(() => service.layerUnwrapper()({ [keyProviderAnnotation('attestation-agent')]: value }));
      if (out !== undefined && !Buffer.from(out).equals(opts)) throw new Error('an annotation unwrapped to other data');
    }),
  },
];

if (process.env['VITEST'] !== undefined) {
  const { describe, expect, it } = await import('vitest');
  describe('fuzz: key-provider requests', () => {
    it('the seeds unwrap', async () => {
      expect(decodeBytesMessage(wire, 1 << 20).equals(request)).toBe(true);
      expect(Buffer.from(decodeKeyProviderOutput(await service.handleMessage(request)).keyunwrapresults!.optsdata!).equals(opts)).toBe(true);
    });
    for (const p of properties) it(p.name, () => fc.assert(p.property, { numRuns: 200 }));
  });
}
