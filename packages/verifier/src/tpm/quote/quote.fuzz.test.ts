import { createHash, generateKeyPairSync, sign } from 'node:crypto';
import fc from 'fast-check';
import { tpm2ToolsPcrFile } from '@keyhold/test-harness';
import { VerifierError } from '../../errors.js';
import { decodeUnverifiedAttest } from '../attest.js';
import { decodeUnverifiedTpm2ToolsPcrFile } from '../pcr-file.js';
import { decodeUnverifiedSignature } from '../signature.js';
import { verifyQuote } from './verify.js';

/**
 * Fuzz properties (issue 12) for the quote parsers: TPMS_ATTEST, TPMT_SIGNATURE, the tpm2-tools
 * PCR file and verifyQuote end to end. Each holds for any input: only VerifierError escapes, and
 * nothing but the original quote verifies. Vitest runs 200 cases of each; `pnpm fuzz` runs them longer.
 * Seeds are built here (an RSA and an ECDSA AK made in the test), then mutated.
 */

// ---- Seeds: a valid quote over PCRs 0..3 (sha256 bank), signed RSASSA-SHA256 and ECDSA-SHA256.

const u16 = (n: number): Buffer => Buffer.from([n >> 8, n & 0xff]);
const u32 = (n: number): Buffer => Buffer.from([n >>> 24, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff]);
const tpm2b = (b: Uint8Array): Buffer => Buffer.concat([u16(b.byteLength), b]);
const pcrValues = [0, 1, 2, 3].map((i) => createHash('sha256').update(`pcr${i}`).digest());
const nonce = Buffer.from('fuzz-nonce-0123456789', 'utf8');

function attest(): Buffer {
  const clock = Buffer.alloc(17);
  clock.writeBigUInt64BE(123456n, 0);
  clock[16] = 1;
  const selection = Buffer.concat([u32(1), u16(0x000b), Buffer.from([3, 0x0f, 0, 0])]);
  const digest = createHash('sha256').update(Buffer.concat(pcrValues)).digest();
  return Buffer.concat([u32(0xff544347), u16(0x8018), tpm2b(Buffer.alloc(34, 7)), tpm2b(nonce), clock, Buffer.alloc(8, 1), selection, tpm2b(digest)]);
}

const message = attest();
const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
const ecc = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const rsaSignature = Buffer.concat([u16(0x0014), u16(0x000b), tpm2b(sign('sha256', message, rsa.privateKey))]);
const rs = sign('sha256', message, { key: ecc.privateKey, dsaEncoding: 'ieee-p1363' });
const eccSignature = Buffer.concat([u16(0x0018), u16(0x000b), tpm2b(rs.subarray(0, 32)), tpm2b(rs.subarray(32))]);
const pcrFile = tpm2ToolsPcrFile(0x000b, pcrValues);
const aks = [
  { der: rsa.publicKey.export({ format: 'der', type: 'spki' }), signature: rsaSignature },
  { der: ecc.publicKey.export({ format: 'der', type: 'spki' }), signature: eccSignature },
];

// ---- Mutations: flipped bits, overwritten bytes, huge length fields, truncations, insertions.

type Edit = { kind: 'flip' | 'set' | 'big' | 'cut' | 'insert'; at: number; value: number; bytes: Uint8Array };
const edit: fc.Arbitrary<Edit> = fc.record({
  kind: fc.constantFrom('flip', 'set', 'big', 'cut', 'insert'),
  at: fc.nat(),
  value: fc.nat(255),
  bytes: fc.uint8Array({ maxLength: 12 }),
});

function apply(seed: Uint8Array, edits: readonly Edit[]): Uint8Array {
  let b = Buffer.from(seed);
  for (const e of edits) {
    if (b.length === 0) break;
    const at = e.at % b.length;
    if (e.kind === 'flip') b[at] = (b[at] as number) ^ (1 << (e.value & 7));
    else if (e.kind === 'set') b[at] = e.value;
    else if (e.kind === 'big') b.fill(e.value & 1 ? 0xff : 0x7f, at, Math.min(b.length, at + 1 + (e.value % 4))); // a length field claiming ~2^15..2^31
    else if (e.kind === 'cut') b = b.subarray(0, at);
    else b = Buffer.concat([b.subarray(0, at), e.bytes, b.subarray(at)]);
  }
  return b;
}

const mutatedFrom = (...seeds: Uint8Array[]): fc.Arbitrary<Uint8Array> =>
  fc.oneof({ weight: 4, arbitrary: fc.tuple(fc.constantFrom(...seeds), fc.array(edit, { minLength: 1, maxLength: 5 })).map(([s, es]) => apply(s, es)) }, fc.uint8Array({ maxLength: 600 }));

function onlyVerifierErrors(fn: () => unknown): unknown {
  try {
    return fn();
  } catch (err) {
    if (err instanceof VerifierError) return undefined;
    throw err;
  }
}

/** What `pnpm fuzz` (scripts/fuzz.ts) runs for as long as asked, and vitest 200 cases of. */
export type FuzzProperty = { readonly name: string; readonly property: fc.IRawProperty<any, boolean> };

export const properties: readonly FuzzProperty[] = [
  {
    name: 'verifier: TPMS_ATTEST decoding throws only VerifierError',
    property: fc.property(mutatedFrom(message), (b) => void onlyVerifierErrors(() => decodeUnverifiedAttest(b))),
  },
  {
    name: 'verifier: TPMT_SIGNATURE decoding throws only VerifierError',
    property: fc.property(mutatedFrom(rsaSignature, eccSignature), (b) => void onlyVerifierErrors(() => decodeUnverifiedSignature(b))),
  },
  {
    name: 'verifier: tpm2-tools PCR file decoding throws only VerifierError',
    property: fc.property(mutatedFrom(pcrFile), (b) => void onlyVerifierErrors(() => decodeUnverifiedTpm2ToolsPcrFile(b))),
  },
  {
    name: 'verifier: verifyQuote throws only VerifierError and accepts no altered quote',
    property: fc.property(
      fc.nat(1),
      fc.option(mutatedFrom(message), { freq: 2 }),
      fc.option(mutatedFrom(rsaSignature, eccSignature), { freq: 2 }),
      fc.option(mutatedFrom(pcrFile), { freq: 3 }),
      (which, m, s, p) => {
        const ak = aks[which]!;
        const msg = m ?? message;
        const verified = onlyVerifierErrors(() => {
          const banks = decodeUnverifiedTpm2ToolsPcrFile(p ?? pcrFile);
          const values = banks[0]?.values ?? new Map<number, Uint8Array>();
          return verifyQuote({ message: msg, signature: s ?? ak.signature, akPublicKeyDer: ak.der, pcrs: { bank: 'sha256', values }, expectedExtraData: nonce });
        });
        // SECURITY property: a quote whose message changed never verifies; the untouched one always does.
        if (verified !== undefined && !Buffer.from(msg).equals(message)) throw new Error('an altered TPMS_ATTEST verified');
        if (m === null && s === null && p === null && verified === undefined) throw new Error('the valid quote was refused');
      },
    ),
  },
];

if (process.env['VITEST'] !== undefined) {
  const { describe, it } = await import('vitest');
  describe('fuzz: quote parsers', () => {
    for (const p of properties) it(p.name, () => fc.assert(p.property, { numRuns: 200 }));
  });
}
