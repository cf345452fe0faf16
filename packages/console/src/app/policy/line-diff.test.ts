import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { MAX_DIFF_LINES, diffLines } from './line-diff.js';

describe('diffLines', () => {
  it('marks removed, added and shared lines in order', () => {
    expect(diffLines('a\nb\nc\nd', 'a\nc\nx\nd')).toEqual([
      { op: 'same', text: 'a' },
      { op: 'del', text: 'b' },
      { op: 'same', text: 'c' },
      { op: 'add', text: 'x' },
      { op: 'same', text: 'd' },
    ]);
    expect(diffLines('same', 'same')).toEqual([{ op: 'same', text: 'same' }]);
  });

  it('rebuilds both sides and keeps as many lines as possible (property)', () => {
    const lines = fc.array(fc.constantFrom('a', 'b', 'c', '{', '}'), { maxLength: 30 }).map((l) => l.join('\n'));
    fc.assert(
      fc.property(lines, lines, (x, y) => {
        const d = diffLines(x, y);
        expect(d.filter((l) => l.op !== 'add').map((l) => l.text).join('\n')).toBe(x);
        expect(d.filter((l) => l.op !== 'del').map((l) => l.text).join('\n')).toBe(y);
        if (x === y) expect(d.every((l) => l.op === 'same')).toBe(true);
      }),
      { numRuns: 200 },
    );
  });

  it('refuses to build a table for huge changed regions', () => {
    const big = Array.from({ length: MAX_DIFF_LINES + 1 }, (_, i) => `l${i}`).join('\n');
    expect(() => diffLines(big, 'x')).toThrow(RangeError);
    // A huge but identical text is fine: head/tail trimming leaves nothing to tabulate.
    expect(diffLines(big, big)).toHaveLength(MAX_DIFF_LINES + 1);
  });
});
