import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { VerifierError } from '../errors.js';
import { decodeUnverifiedSignature } from './signature.js';

const repoRoot = fileURLToPath(new URL('../../../../', import.meta.url));
const sigFile = path.resolve(repoRoot, '../shared/corpus/quotes/keylime-checkquote/quotesig.out');
const haveCorpus = existsSync(sigFile);
if (!haveCorpus) console.warn(`skipping corpus TPMT_SIGNATURE tests: ${sigFile} is absent`);

function codeOf(fn: () => unknown): string {
  try {
    fn();
    return 'accepted';
  } catch (err) {
    if (err instanceof VerifierError) return err.code;
    throw err;
  }
}

const be16 = (n: number): number[] => [n >> 8, n & 0xff];

describe('decodeUnverifiedSignature', () => {
  it.skipIf(!haveCorpus)('decodes the corpus RSASSA-SHA256 signature', () => {
    const bytes = readFileSync(sigFile);
    const sig = decodeUnverifiedSignature(bytes);
    expect(sig.scheme).toBe('rsassa');
    expect(sig.hash).toBe('sha256');
    if (sig.scheme === 'ecdsa') throw new Error('unreachable');
    expect(Buffer.from(sig.signature)).toEqual(bytes.subarray(6));
  });

  it('decodes ECDSA r and s', () => {
    const sig = decodeUnverifiedSignature(Uint8Array.from([...be16(0x18), ...be16(0x0c), ...be16(2), 1, 2, ...be16(1), 3]));
    expect(sig).toEqual({ scheme: 'ecdsa', hash: 'sha384', r: Uint8Array.of(1, 2), s: Uint8Array.of(3) });
  });

  it('rejects SHA-1 and unknown hashes for every scheme', () => {
    for (const scheme of [0x14, 0x16, 0x18]) {
      for (const hash of [0x0004, 0x000d, 0x0012, 0x0010, 0xffff]) {
        expect(codeOf(() => decodeUnverifiedSignature(Uint8Array.from([...be16(scheme), ...be16(hash), 0, 0, 0, 0])))).toBe('TPM_UNSUPPORTED_ALGORITHM');
      }
    }
  });

  it('rejects other schemes (HMAC, NULL, ECDAA, SM2, ECSCHNORR, RSAES)', () => {
    for (const scheme of [0x0005, 0x0010, 0x001a, 0x001b, 0x001c, 0x0015, 0x0000]) {
      expect(codeOf(() => decodeUnverifiedSignature(Uint8Array.from([...be16(scheme), ...be16(0x0b), 0, 0])))).toBe('TPM_UNSUPPORTED_ALGORITHM');
    }
  });

  it('rejects oversized, truncated and trailing encodings', () => {
    expect(codeOf(() => decodeUnverifiedSignature(Uint8Array.from([...be16(0x14), ...be16(0x0b), ...be16(513)])))).toBe('TPM_LENGTH_EXCEEDED');
    expect(codeOf(() => decodeUnverifiedSignature(Uint8Array.from([...be16(0x18), ...be16(0x0b), ...be16(67)])))).toBe('TPM_LENGTH_EXCEEDED');
    expect(codeOf(() => decodeUnverifiedSignature(Uint8Array.from([...be16(0x14), ...be16(0x0b), ...be16(4), 1, 2])))).toBe('TPM_TRUNCATED');
    expect(codeOf(() => decodeUnverifiedSignature(Uint8Array.from([...be16(0x18), ...be16(0x0b), ...be16(1), 1])))).toBe('TPM_TRUNCATED');
    expect(codeOf(() => decodeUnverifiedSignature(Uint8Array.from([...be16(0x14), ...be16(0x0b), ...be16(1), 1, 9])))).toBe('TPM_TRAILING_BYTES');
    expect(codeOf(() => decodeUnverifiedSignature(new Uint8Array(0)))).toBe('TPM_TRUNCATED');
    expect(codeOf(() => decodeUnverifiedSignature(Uint8Array.of(0)))).toBe('TPM_TRUNCATED');
  });
});

describe('decodeUnverifiedSignature on arbitrary bytes', () => {
  it('either decodes or throws a VerifierError, never anything else', () => {
    const prefix = fc.constantFrom([0x00, 0x14, 0x00, 0x0b], [0x00, 0x16, 0x00, 0x0c], [0x00, 0x18, 0x00, 0x0b], []);
    fc.assert(
      fc.property(prefix, fc.uint8Array({ maxLength: 600 }), (head, tail) => {
        try {
          decodeUnverifiedSignature(Uint8Array.from([...head, ...tail]));
        } catch (err) {
          expect(err).toBeInstanceOf(VerifierError);
        }
      }),
      { numRuns: 3000 },
    );
  });
});
