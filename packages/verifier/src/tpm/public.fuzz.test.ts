import { generateKeyPairSync } from 'node:crypto';
import fc from 'fast-check';
import { IdentityError } from '../identity/errors.js';
import { tpmPublicToSpkiDer } from '../identity/spki.js';
import { nameOfPublic } from './name.js';
import { parseTpm2bPublic } from './public.js';

/**
 * Fuzz property (issue 12) for TPM2B_PUBLIC: for any input, parsing, SPKI conversion and the name
 * computation throw only IdentityError. Seeds (an RSA AK, an ECC AK and an RSA EK-style key with
 * AES-128-CFB) are built here from keys made in the test, then mutated.
 */

const u16 = (n: number): Buffer => Buffer.from([n >> 8, n & 0xff]);
const u32 = (n: number): Buffer => Buffer.from([n >>> 24, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff]);
const tpm2b = (b: Uint8Array): Buffer => Buffer.concat([u16(b.byteLength), b]);
const b64url = (s: string): Buffer => Buffer.from(s, 'base64url');

const rsaJwk = generateKeyPairSync('rsa', { modulusLength: 2048 }).publicKey.export({ format: 'jwk' });
const eccJwk = generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey.export({ format: 'jwk' });
const wrap = (tpmt: Buffer): Buffer => tpm2b(tpmt);
const rsaAk = wrap(Buffer.concat([u16(0x0001), u16(0x000b), u32(0x00050072), tpm2b(Buffer.alloc(0)), u16(0x0010), u16(0x0014), u16(0x000b), u16(2048), u32(0), tpm2b(b64url(rsaJwk.n!))]));
const eccAk = wrap(Buffer.concat([u16(0x0023), u16(0x000b), u32(0x00050072), tpm2b(Buffer.alloc(0)), u16(0x0010), u16(0x0018), u16(0x000b), u16(0x0003), u16(0x0010), tpm2b(b64url(eccJwk.x!)), tpm2b(b64url(eccJwk.y!))]));
const rsaEk = wrap(Buffer.concat([u16(0x0001), u16(0x000b), u32(0x000300b2), tpm2b(Buffer.alloc(32, 0x83)), u16(0x0006), u16(128), u16(0x0043), u16(0x0010), u16(2048), u32(0), tpm2b(b64url(rsaJwk.n!))]));

type Edit = { kind: 'flip' | 'set' | 'big' | 'cut' | 'insert'; at: number; value: number; bytes: Uint8Array };
const edit: fc.Arbitrary<Edit> = fc.record({ kind: fc.constantFrom('flip', 'set', 'big', 'cut', 'insert'), at: fc.nat(), value: fc.nat(255), bytes: fc.uint8Array({ maxLength: 12 }) });

/** Flipped bits, overwritten bytes, huge length fields, truncations and insertions of a seed. */
function apply(seed: Uint8Array, edits: readonly Edit[]): Uint8Array {
  let b = Buffer.from(seed);
  for (const e of edits) {
    if (b.length === 0) break;
    const at = e.at % b.length;
    if (e.kind === 'flip') b[at] = (b[at] as number) ^ (1 << (e.value & 7));
    else if (e.kind === 'set') b[at] = e.value;
    else if (e.kind === 'big') b.fill(e.value & 1 ? 0xff : 0x7f, at, Math.min(b.length, at + 2));
    else if (e.kind === 'cut') b = b.subarray(0, at);
    else b = Buffer.concat([b.subarray(0, at), e.bytes, b.subarray(at)]);
  }
  return b;
}

const inputs = fc.oneof(
  { weight: 4, arbitrary: fc.tuple(fc.constantFrom(rsaAk, eccAk, rsaEk), fc.array(edit, { minLength: 1, maxLength: 5 })).map(([s, es]) => apply(s, es)) },
  fc.uint8Array({ maxLength: 600 }),
);

/** What `pnpm fuzz` (scripts/fuzz.ts) runs for as long as asked, and vitest 200 cases of. */
export type FuzzProperty = { readonly name: string; readonly property: fc.IRawProperty<any, boolean> };

export const properties: readonly FuzzProperty[] = [
  {
    name: 'verifier: TPM2B_PUBLIC parsing, SPKI and name throw only IdentityError',
    property: fc.property(inputs, (b) => {
      try {
        const pub = parseTpm2bPublic(b);
        nameOfPublic(pub);
        tpmPublicToSpkiDer(pub);
      } catch (err) {
        if (!(err instanceof IdentityError)) throw err;
      }
    }),
  },
];

if (process.env['VITEST'] !== undefined) {
  const { describe, it } = await import('vitest');
  describe('fuzz: TPM2B_PUBLIC', () => {
    it('the seeds are valid', () => {
      for (const seed of [rsaAk, eccAk, rsaEk]) tpmPublicToSpkiDer(parseTpm2bPublic(seed));
    });
    for (const p of properties) it(p.name, () => fc.assert(p.property, { numRuns: 200 }));
  });
}
