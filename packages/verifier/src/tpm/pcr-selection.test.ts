import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { VerifierError } from '../errors.js';
import { pcrIndicesToSelectBitmap, pcrSelectBitmapToIndices, readPcrSelectionList } from './pcr-selection.js';
import { TpmReader } from './quote/tpm-reader.js';

describe('PCR selection bitmaps', () => {
  it('maps bit i%8 of byte i/8 to PCR i (TPM 2.0 Part 2 §10.6.2)', () => {
    // keylime-checkquote's selection bytes 00 80 41 select PCRs 15, 16, 22 (its README.json)
    expect(pcrSelectBitmapToIndices(Uint8Array.of(0x00, 0x80, 0x41))).toEqual([15, 16, 22]);
    expect(pcrSelectBitmapToIndices(Uint8Array.of(0xff, 0xff, 0xff))).toEqual([...Array(24).keys()]);
    expect(pcrIndicesToSelectBitmap([16])).toEqual(Uint8Array.of(0x00, 0x00, 0x01));
    expect(pcrIndicesToSelectBitmap([])).toEqual(Uint8Array.of(0, 0, 0));
  });

  it('round-trips any set of indices', () => {
    fc.assert(
      fc.property(fc.uniqueArray(fc.integer({ min: 0, max: 31 })), (indices) => {
        const bitmap = pcrIndicesToSelectBitmap(indices, 4);
        expect(pcrSelectBitmapToIndices(bitmap)).toEqual([...indices].sort((a, b) => a - b));
      }),
    );
  });

  it('throws TypeError for indices that do not fit, duplicates and bad sizes', () => {
    expect(() => pcrIndicesToSelectBitmap([24])).toThrow(TypeError);
    expect(() => pcrIndicesToSelectBitmap([-1])).toThrow(TypeError);
    expect(() => pcrIndicesToSelectBitmap([1.5])).toThrow(TypeError);
    expect(() => pcrIndicesToSelectBitmap([3, 3])).toThrow(TypeError);
    expect(() => pcrIndicesToSelectBitmap([0], 5)).toThrow(TypeError);
  });

  it('readPcrSelectionList rejects hostile counts and sizes', () => {
    const code = (bytes: number[]): string => {
      try {
        readPcrSelectionList(new TpmReader(Uint8Array.from(bytes)), 'sel');
        return 'accepted';
      } catch (err) {
        return err instanceof VerifierError ? err.code : 'other';
      }
    };
    expect(code([0, 0, 0, 1, 0, 0x0b, 3, 1, 2, 3])).toBe('accepted');
    expect(code([0, 0, 0, 17])).toBe('TPM_LENGTH_EXCEEDED');
    expect(code([0xff, 0xff, 0xff, 0xff])).toBe('TPM_LENGTH_EXCEEDED');
    expect(code([0, 0, 0, 1, 0, 0x0b, 5, 1, 2, 3, 4, 5])).toBe('TPM_LENGTH_EXCEEDED');
    expect(code([0, 0, 0, 2, 0, 0x0b, 3, 1, 2, 3])).toBe('TPM_TRUNCATED');
    expect(code([0, 0, 0, 1, 0, 0x0b, 3, 1])).toBe('TPM_TRUNCATED');
  });
});
