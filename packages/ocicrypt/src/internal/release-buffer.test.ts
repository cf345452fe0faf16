import { createCipheriv, randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { releaseBuffer } from './release-buffer.js';

describe('releaseBuffer', () => {
  it('detaches a whole, exclusively owned buffer (a cipher output) and frees its memory', () => {
    const before = process.memoryUsage().arrayBuffers;
    const outs: Buffer[] = [];
    const c = createCipheriv('aes-256-ctr', randomBytes(32), randomBytes(16));
    for (let i = 0; i < 64; i++) {
      const out = c.update(Buffer.alloc(1024 * 1024));
      releaseBuffer(out);
      outs.push(out);
    }
    expect(outs.every((o) => o.byteLength === 0 && o.buffer.byteLength === 0)).toBe(true);
    // 64 MiB went through while all 64 outputs are still referenced: none of it is held.
    expect(process.memoryUsage().arrayBuffers - before).toBeLessThan(8 * 1024 * 1024);
  });

  it('leaves views into shared or pooled memory alone (detaching would empty their neighbours)', () => {
    const pooled = Buffer.from('small pooled buffer');
    const big = Buffer.alloc(64 * 1024, 1);
    const view = big.subarray(4096);
    const small = Buffer.allocUnsafeSlow(100);
    for (const b of [pooled, view, small]) releaseBuffer(b);
    expect(pooled.toString()).toBe('small pooled buffer');
    expect(big.byteLength).toBe(64 * 1024);
    expect(view.byteLength).toBe(60 * 1024);
    expect(small.byteLength).toBe(100);
  });
});
