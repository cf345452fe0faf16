import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { VerifierError } from '../errors.js';
import { decodeUnverifiedAttest } from './attest.js';

const repoRoot = fileURLToPath(new URL('../../../../', import.meta.url));
const corpus = path.resolve(repoRoot, '../shared/corpus/quotes');
const haveCorpus = existsSync(corpus);
if (!haveCorpus) console.warn(`skipping corpus TPMS_ATTEST tests: ${corpus} is absent`);

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');

function codeOf(fn: () => unknown): string {
  try {
    fn();
    return 'accepted';
  } catch (err) {
    if (err instanceof VerifierError) return err.code;
    throw err;
  }
}

describe.skipIf(!haveCorpus)('decodeUnverifiedAttest on corpus quotes', () => {
  for (const [dir, file] of [['keylime-checkquote', 'quote.out'], ['keylime-inline', 'quote.bin']] as const) {
    it(`${dir}: decodes to the values in README.json (decoded independently)`, () => {
      const readme = JSON.parse(readFileSync(path.join(corpus, dir, 'README.json'), 'utf8'));
      const want = readme.decoded_quote;
      const a = decodeUnverifiedAttest(readFileSync(path.join(corpus, dir, file)));
      expect(`0x${a.magic.toString(16)}`).toBe(want.magic);
      expect(a.type).toBe(0x8018);
      expect(hex(a.qualifiedSigner)).toBe(want.qualifiedSigner);
      expect(hex(a.extraData)).toBe(want.extraData);
      expect(a.clockInfo).toEqual({
        clock: BigInt(want.clockInfo.clock),
        resetCount: want.clockInfo.resetCount,
        restartCount: want.clockInfo.restartCount,
        safe: want.clockInfo.safe === 1,
      });
      expect(`0x${a.firmwareVersion.toString(16).padStart(16, '0')}`).toBe(want.firmwareVersion);
      expect(a.attested.pcrSelect).toEqual([{ hashAlg: 0x000b, pcrs: want.pcrSelect.sha256 }]);
      expect(hex(a.attested.pcrDigest)).toBe(want.pcrDigest);
    });
  }

  const quote = haveCorpus ? readFileSync(path.join(corpus, 'keylime-checkquote', 'quote.out')) : Buffer.alloc(0);
  const patched = (offset: number, bytes: number[]): Buffer => {
    const b = Buffer.from(quote);
    Buffer.from(bytes).copy(b, offset);
    return b;
  };

  it('rejects every truncation with TPM_TRUNCATED', () => {
    for (let len = 0; len < quote.length; len++) {
      expect(codeOf(() => decodeUnverifiedAttest(quote.subarray(0, len))), `length ${len}`).toBe('TPM_TRUNCATED');
    }
  });

  it('rejects trailing bytes', () => {
    expect(codeOf(() => decodeUnverifiedAttest(Buffer.concat([quote, Buffer.of(0)])))).toBe('TPM_TRAILING_BYTES');
  });

  it('rejects oversized length fields before reading them', () => {
    // offsets in this quote: qualifiedSigner.size @6, extraData.size @42, pcrSelect.count @0x59,
    // sizeofSelect @0x5f, pcrDigest.size @0x63
    expect(codeOf(() => decodeUnverifiedAttest(patched(6, [0x00, 0x43])))).toBe('TPM_LENGTH_EXCEEDED');
    expect(codeOf(() => decodeUnverifiedAttest(patched(6, [0xff, 0xff])))).toBe('TPM_LENGTH_EXCEEDED');
    expect(codeOf(() => decodeUnverifiedAttest(patched(42, [0x00, 0x41])))).toBe('TPM_LENGTH_EXCEEDED');
    expect(codeOf(() => decodeUnverifiedAttest(patched(0x59, [0x00, 0x00, 0x00, 0x11])))).toBe('TPM_LENGTH_EXCEEDED');
    expect(codeOf(() => decodeUnverifiedAttest(patched(0x59, [0xff, 0xff, 0xff, 0xff])))).toBe('TPM_LENGTH_EXCEEDED');
    expect(codeOf(() => decodeUnverifiedAttest(patched(0x5f, [0x05])))).toBe('TPM_LENGTH_EXCEEDED');
    expect(codeOf(() => decodeUnverifiedAttest(patched(0x63, [0x00, 0x41])))).toBe('TPM_LENGTH_EXCEEDED');
    expect(codeOf(() => decodeUnverifiedAttest(new Uint8Array(4096)))).toBe('TPM_LENGTH_EXCEEDED');
  });

  it('rejects a non-boolean safe flag and a non-quote type', () => {
    expect(codeOf(() => decodeUnverifiedAttest(patched(0x50, [0x02])))).toBe('TPM_MALFORMED');
    expect(codeOf(() => decodeUnverifiedAttest(patched(4, [0x80, 0x17])))).toBe('QUOTE_WRONG_TYPE');
  });

  it('returns the magic without judging it (verifyQuote does)', () => {
    expect(decodeUnverifiedAttest(patched(0, [0, 0, 0, 0])).magic).toBe(0);
  });
});

describe('decodeUnverifiedAttest on arbitrary bytes', () => {
  it('either decodes or throws a VerifierError, never anything else', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), (bytes) => {
        // Start most inputs with a valid header so the fuzzer reaches the inner structures.
        const input = bytes.length > 6 && (bytes[0] as number) < 200 ? Uint8Array.from([0xff, 0x54, 0x43, 0x47, 0x80, 0x18, ...bytes.subarray(6)]) : bytes;
        try {
          decodeUnverifiedAttest(input);
        } catch (err) {
          expect(err).toBeInstanceOf(VerifierError);
        }
      }),
      { numRuns: 3000 },
    );
  });
});
