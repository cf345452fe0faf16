import { createCipheriv, randomBytes } from 'node:crypto';
import { mkdtemp, open, readFile, rm, writeFile, type FileHandle } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { releaseBuffer } from '../internal/release-buffer.js';
import { pump, type PumpStep } from './pump.js';

let root: string;
beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'ocicrypt-pump-'));
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

const readErr = (cause: unknown): Error => new Error('read failed', { cause });

async function withFiles<T>(input: Buffer, fn: (src: FileHandle, out: FileHandle, outPath: string) => Promise<T>): Promise<T> {
  const inPath = join(root, `in-${randomBytes(4).toString('hex')}`);
  const outPath = join(root, `out-${randomBytes(4).toString('hex')}`);
  await writeFile(inPath, input);
  const src = await open(inPath, 'r');
  const out = await open(outPath, 'wx');
  try {
    return await fn(src, out, outPath);
  } finally {
    await src.close();
    await out.close();
  }
}

describe('pump (read ahead, transform and write behind, fixed memory)', () => {
  it('copies untransformed chunks in order, from at most three read buffers', async () => {
    const input = randomBytes(5 * 4096 + 123);
    await withFiles(input, async (src, out, outPath) => {
      const seen: number[] = [];
      const buffers = new Set<ArrayBufferLike>();
      await pump(src.fd, out.fd, 4096, { chunk: (c) => (seen.push(c.length), buffers.add(c.buffer), c), end: () => Buffer.alloc(0) }, readErr);
      expect(seen).toEqual([4096, 4096, 4096, 4096, 4096, 123]);
      expect(buffers.size).toBeLessThanOrEqual(3);
      expect((await readFile(outPath)).equals(input)).toBe(true);
    });
  });

  // Reads, the step and writes complete in varying orders; every interleaving must keep the bytes.
  it('keeps every byte in order whatever the timing (slow steps, pass-through and transformed)', async () => {
    const input = randomBytes(300 * 1024 + 5);
    const busy = (us: number): void => {
      const until = performance.now() + us / 1000;
      while (performance.now() < until);
    };
    for (const passThrough of [true, false]) {
      await withFiles(input, async (src, out, outPath) => {
        let n = 0;
        const buffers = new Set<ArrayBufferLike>();
        const step: PumpStep = {
          chunk: (c) => {
            buffers.add(c.buffer);
            if (n++ % 7 === 3) busy(400);
            return passThrough ? c : Buffer.from(c);
          },
          end: () => Buffer.alloc(0),
        };
        await pump(src.fd, out.fd, 1024, step, readErr);
        expect((await readFile(outPath)).equals(input)).toBe(true);
        // A step that never passes its input through needs only two read buffers.
        expect(buffers.size).toBeLessThanOrEqual(passThrough ? 3 : 2);
      });
    }
  });

  it('writes transformed chunks in order (some empty), and the end bytes last; at most two outputs are held at once', async () => {
    const input = randomBytes(40 * 1000 + 7);
    const key = randomBytes(32);
    const iv = randomBytes(16);
    const cipher = createCipheriv('aes-256-ctr', key, iv);
    await withFiles(input, async (src, out, outPath) => {
      let held = 0;
      let maxHeld = 0;
      let n = 0;
      const parts: Buffer[] = [];
      const step: PumpStep = {
        chunk: (c) => {
          // Every third chunk produces nothing now and is carried into the next output.
          parts.push(cipher.update(c));
          if (n++ % 3 === 0) return Buffer.alloc(0);
          const o = Buffer.concat(parts.splice(0));
          maxHeld = Math.max(maxHeld, ++held);
          return o;
        },
        end: () => {
          parts.push(cipher.final(), Buffer.from('END'));
          maxHeld = Math.max(maxHeld, ++held);
          return Buffer.concat(parts.splice(0));
        },
        written: () => {
          held--;
        },
      };
      await pump(src.fd, out.fd, 1000, step, readErr);
      const expected = Buffer.concat([createCipheriv('aes-256-ctr', key, iv).update(input), Buffer.from('END')]);
      expect((await readFile(outPath)).equals(expected)).toBe(true);
      expect(held).toBe(0);
      expect(maxHeld).toBeLessThanOrEqual(2);
    });
  });

  it('handles an empty source (only the end bytes are written)', async () => {
    await withFiles(Buffer.alloc(0), async (src, out, outPath) => {
      await pump(src.fd, out.fd, 4096, { chunk: () => Buffer.from('x'), end: () => Buffer.from('tail') }, readErr);
      expect((await readFile(outPath)).toString()).toBe('tail');
    });
  });

  // The callers' security checks throw from `chunk` (descriptor size) and `end` (digest, HMAC):
  // the pump must stop, write nothing more, and reject only once nothing is in flight.
  it('stops at the first error thrown by the step and writes nothing after it', async () => {
    const input = randomBytes(10 * 1024);
    await withFiles(input, async (src, out, outPath) => {
      let calls = 0;
      const step: PumpStep = {
        chunk: (c) => {
          if (++calls === 3) throw new Error('refused');
          return Buffer.from(c);
        },
        end: () => Buffer.from('never'),
      };
      await expect(pump(src.fd, out.fd, 1024, step, readErr)).rejects.toThrow('refused');
      expect(calls).toBe(3);
      const written = await readFile(outPath);
      expect(written.equals(input.subarray(0, 2048))).toBe(true);
    });
    await withFiles(input, async (src, out, outPath) => {
      await expect(pump(src.fd, out.fd, 1024, { chunk: (c) => Buffer.from(c), end: () => { throw new Error('final check'); } }, readErr)).rejects.toThrow('final check');
      expect((await readFile(outPath)).length).toBe(input.length);
    });
  });

  it('reports read errors through readError and write errors as they are', async () => {
    const dir = await open(root, 'r');
    const out = await open(join(root, `o-${randomBytes(4).toString('hex')}`), 'wx');
    try {
      await expect(pump(dir.fd, out.fd, 1024, { chunk: (c) => c, end: () => Buffer.alloc(0) }, readErr)).rejects.toMatchObject({ message: 'read failed', cause: { code: 'EISDIR' } });
    } finally {
      await dir.close();
      await out.close();
    }
    await withFiles(randomBytes(3000), async (src) => {
      const roPath = join(root, `ro2-${randomBytes(4).toString('hex')}`);
      await writeFile(roPath, '');
      const ro = await open(roPath, 'r');
      try {
        await expect(pump(src.fd, ro.fd, 1024, { chunk: (c) => c, end: () => Buffer.alloc(0) }, readErr)).rejects.toMatchObject({ code: 'EBADF' });
      } finally {
        await ro.close();
      }
    });
  });

  it('turns a synchronous fs argument error into a rejection, not a crash', async () => {
    // A (buggy) step that hands back its input and then frees it detaches the read buffer.
    await withFiles(randomBytes(64 * 1024), async (src, out) => {
      await expect(pump(src.fd, out.fd, 8192, { chunk: (c) => c, end: () => Buffer.alloc(0), written: releaseBuffer }, readErr)).rejects.toThrow();
    });
  });
});
