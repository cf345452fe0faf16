import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { imageProgressBar } from './progress.js';

class Term extends Writable {
  text = '';
  constructor(readonly isTTY: boolean) {
    super();
  }
  columns = 120;
  cursorTo(): boolean {
    return true;
  }
  clearLine(): boolean {
    return true;
  }
  moveCursor(): boolean {
    return true;
  }
  override _write(chunk: Buffer, _e: BufferEncoding, cb: () => void): void {
    this.text += chunk.toString();
    cb();
  }
}

describe('imageProgressBar (cli-progress)', () => {
  it('draws nothing and offers no listener when the stream is not a terminal', () => {
    const s = new Term(false);
    const bar = imageProgressBar(s, 'encrypt');
    expect(bar.onProgress).toBeUndefined();
    bar.done();
    expect(s.text).toBe('');
  });

  it('on a terminal shows the layer, percentage and MiB, and ends the line', () => {
    const s = new Term(true);
    const bar = imageProgressBar(s, 'decrypt');
    bar.onProgress?.({ layer: 0, layers: 2, bytesDone: 0, bytesTotal: 4 * 1_048_576 });
    bar.onProgress?.({ layer: 1, layers: 2, bytesDone: 4 * 1_048_576, bytesTotal: 4 * 1_048_576 });
    bar.done();
    bar.done();
    expect(s.text).toContain('decrypt layer 2/2 [##############################] 100% | 4.0/4.0 MiB');
    expect(s.text.endsWith('\n')).toBe(true);
  });
});
