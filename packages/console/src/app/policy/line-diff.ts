export interface DiffLine {
  readonly op: 'same' | 'add' | 'del';
  readonly text: string;
}

/** Above this many lines per side the diff is not computed line by line (quadratic table). */
export const MAX_DIFF_LINES = 4000;

/**
 * A line diff of two texts (longest common subsequence): lines of `before` only are `del`, of
 * `after` only `add`, shared ones `same`, in order. Common head and tail are trimmed first so the
 * table covers only the changed middle. Throws RangeError past MAX_DIFF_LINES changed lines.
 */
export function diffLines(before: string, after: string): DiffLine[] {
  const a = before.split('\n');
  const b = after.split('\n');
  let head = 0;
  while (head < a.length && head < b.length && a[head] === b[head]) head++;
  let tail = 0;
  while (tail < a.length - head && tail < b.length - head && a[a.length - 1 - tail] === b[b.length - 1 - tail]) tail++;
  const x = a.slice(head, a.length - tail);
  const y = b.slice(head, b.length - tail);
  if (x.length > MAX_DIFF_LINES || y.length > MAX_DIFF_LINES) throw new RangeError(`too many changed lines to diff (more than ${MAX_DIFF_LINES})`);
  const w = y.length + 1;
  const lcs = new Uint32Array((x.length + 1) * w);
  for (let i = x.length - 1; i >= 0; i--) {
    for (let j = y.length - 1; j >= 0; j--) {
      lcs[i * w + j] = x[i] === y[j] ? (lcs[(i + 1) * w + j + 1] ?? 0) + 1 : Math.max(lcs[(i + 1) * w + j] ?? 0, lcs[i * w + j + 1] ?? 0);
    }
  }
  const out: DiffLine[] = a.slice(0, head).map((text) => ({ op: 'same', text }));
  let i = 0;
  let j = 0;
  while (i < x.length && j < y.length) {
    if (x[i] === y[j]) {
      out.push({ op: 'same', text: x[i] as string });
      i++;
      j++;
    } else if ((lcs[(i + 1) * w + j] ?? 0) >= (lcs[i * w + j + 1] ?? 0)) {
      out.push({ op: 'del', text: x[i++] as string });
    } else {
      out.push({ op: 'add', text: y[j++] as string });
    }
  }
  while (i < x.length) out.push({ op: 'del', text: x[i++] as string });
  while (j < y.length) out.push({ op: 'add', text: y[j++] as string });
  for (const text of a.slice(a.length - tail)) out.push({ op: 'same', text });
  return out;
}
