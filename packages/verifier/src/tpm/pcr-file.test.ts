import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { VerifierError } from '../errors.js';
import { decodeUnverifiedTpm2ToolsPcrFile } from './pcr-file.js';

const repoRoot = fileURLToPath(new URL('../../../../', import.meta.url));
const corpus = path.resolve(repoRoot, '../shared/corpus/quotes');
const haveCorpus = existsSync(corpus);
if (!haveCorpus) console.warn(`skipping tpm2-tools PCR file tests: ${corpus} is absent`);

function codeOf(fn: () => unknown): string {
  try {
    fn();
    return 'accepted';
  } catch (err) {
    if (err instanceof VerifierError) return err.code;
    throw err;
  }
}

/** PCR values as tpm2_checkquote printed them (README.json stdout), index → lowercase hex. */
function printedPcrs(stdout: string): Record<number, string> {
  const out: Record<number, string> = {};
  for (const m of stdout.matchAll(/^\s+(\d+): 0x([0-9A-F]+)$/gm)) out[Number(m[1])] = (m[2] as string).toLowerCase();
  return out;
}

describe.skipIf(!haveCorpus)('decodeUnverifiedTpm2ToolsPcrFile', () => {
  for (const [dir, file] of [['keylime-checkquote', 'quotepcr.out'], ['keylime-inline', 'pcrblob.bin']] as const) {
    it(`${dir}: yields the values tpm2_checkquote printed`, () => {
      const readme = JSON.parse(readFileSync(path.join(corpus, dir, 'README.json'), 'utf8'));
      const banks = decodeUnverifiedTpm2ToolsPcrFile(readFileSync(path.join(corpus, dir, file)));
      expect(banks).toHaveLength(1);
      expect(banks[0]?.hashAlg).toBe(0x000b);
      const got = Object.fromEntries([...(banks[0]?.values ?? [])].map(([i, v]) => [i, Buffer.from(v).toString('hex')]));
      expect(got).toEqual(printedPcrs(readme.tpm2_checkquote.stdout));
    });
  }

  const file = haveCorpus ? readFileSync(path.join(corpus, 'keylime-checkquote', 'quotepcr.out')) : Buffer.alloc(0);
  const patched = (offset: number, le32: number): Buffer => {
    const b = Buffer.from(file);
    b.writeUInt32LE(le32, offset);
    return b;
  };

  it('rejects truncation, trailing bytes and hostile counts', () => {
    expect(codeOf(() => decodeUnverifiedTpm2ToolsPcrFile(file.subarray(0, 100)))).toBe('TPM_TRUNCATED');
    expect(codeOf(() => decodeUnverifiedTpm2ToolsPcrFile(file.subarray(0, file.length - 1)))).toBe('TPM_TRUNCATED');
    expect(codeOf(() => decodeUnverifiedTpm2ToolsPcrFile(Buffer.concat([file, Buffer.of(0)])))).toBe('TPM_TRAILING_BYTES');
    expect(codeOf(() => decodeUnverifiedTpm2ToolsPcrFile(patched(0, 17)))).toBe('TPM_LENGTH_EXCEEDED');
    expect(codeOf(() => decodeUnverifiedTpm2ToolsPcrFile(patched(132, 0xffffffff)))).toBe('TPM_LENGTH_EXCEEDED');
    expect(codeOf(() => decodeUnverifiedTpm2ToolsPcrFile(patched(136, 9)))).toBe('TPM_LENGTH_EXCEEDED');
    const bigDigest = Buffer.from(file);
    bigDigest.writeUInt16LE(65, 140);
    expect(codeOf(() => decodeUnverifiedTpm2ToolsPcrFile(bigDigest))).toBe('TPM_LENGTH_EXCEEDED');
    const bigSelect = Buffer.from(file);
    bigSelect[6] = 5;
    expect(codeOf(() => decodeUnverifiedTpm2ToolsPcrFile(bigSelect))).toBe('TPM_LENGTH_EXCEEDED');
  });

  it('rejects a digest count that differs from the selection', () => {
    expect(codeOf(() => decodeUnverifiedTpm2ToolsPcrFile(patched(136, 2)))).toBe('TPM_MALFORMED');
    expect(codeOf(() => decodeUnverifiedTpm2ToolsPcrFile(patched(136, 4)))).toBe('TPM_MALFORMED');
  });
});

describe.skipIf(!haveCorpus)('decodeUnverifiedTpm2ToolsPcrFile on mutated files', () => {
  it('either decodes or throws a VerifierError, never anything else', () => {
    const file = readFileSync(path.join(corpus, 'keylime-checkquote', 'quotepcr.out'));
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.nat({ max: file.length - 1 }), fc.integer({ min: 0, max: 255 })), { maxLength: 6 }), fc.nat({ max: file.length + 8 }), (edits, len) => {
        const b = Buffer.concat([file, Buffer.alloc(8)]).subarray(0, len);
        for (const [at, v] of edits) if (at < b.length) b[at] = v;
        try {
          decodeUnverifiedTpm2ToolsPcrFile(b);
        } catch (err) {
          expect(err).toBeInstanceOf(VerifierError);
        }
      }),
      { numRuns: 2000 },
    );
  });
});
