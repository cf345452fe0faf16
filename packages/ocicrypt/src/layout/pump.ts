import { read, write } from 'node:fs';

/** What {@link pump} does with the bytes it reads. Both may throw, which fails the pump. */
export interface PumpStep {
  /** Consume one chunk read from the source (valid only during the call); return the bytes to write. */
  chunk(chunk: Buffer): Buffer;
  /** The source is exhausted: run the final checks and return the last bytes to write. */
  end(): Buffer;
  /** Called once a returned buffer has been written in full (to release it). */
  written?(buf: Buffer): void;
}

/**
 * Copy file descriptor `src` to `out` through `step`, with the disk and the CPU working at once:
 * while chunk k is being written (in the libuv thread pool), chunk k+1 is read and run through
 * `step` on this thread. At most one read and one write are in flight, into two read buffers of
 * `chunkBytes` (a chunk returned untransformed is written from its read buffer, which is read
 * into again only after that write completed), so memory use is fixed whatever the file size.
 * Writes are sequential and in order, at the descriptor's current position.
 *
 * Written with plain callbacks rather than FileHandle promises: that allocates a few hundred bytes
 * per chunk instead of several KiB, so streaming a large layer does not make V8 grow its young
 * generation (a few MiB of peak RSS).
 *
 * Resolves after `step.end()` returned and every byte was written. On any error (read, write, or
 * thrown by `step`) it stops, waits for the operations in flight to finish (so the caller may
 * close and delete the files at once), and rejects with the first error; `readError` wraps read
 * failures.
 */
export function pump(src: number, out: number, chunkBytes: number, step: PumpStep, readError: (cause: unknown) => Error): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    let buf = Buffer.allocUnsafeSlow(chunkBytes);
    let spare = Buffer.allocUnsafeSlow(chunkBytes);
    let reading = false;
    /** The buffer being written, and how much of it is done. */
    let writing: Buffer | undefined;
    let writtenBytes = 0;
    /** Produced, waiting for the write in flight. */
    let ready: Buffer | undefined;
    let ended = false;
    let failed = false;
    let failure: unknown;

    const settleFailure = (): void => {
      if (!reading && writing === undefined) reject(failure);
    };
    const fail = (err: unknown): void => {
      if (!failed) {
        failed = true;
        failure = err;
      }
      ready = undefined;
      settleFailure();
    };
    const startRead = (): void => {
      reading = true;
      try {
        read(src, buf, 0, chunkBytes, null, onRead);
      } catch (e) {
        // Argument validation throws synchronously (e.g. a step that detached a read buffer).
        reading = false;
        fail(e);
      }
    };
    const startWrite = (from: number): void => {
      const w = writing as Buffer;
      try {
        write(out, w, from, w.length - from, null, onWrite);
      } catch (e) {
        writing = undefined;
        fail(e);
      }
    };
    const onRead = (err: NodeJS.ErrnoException | null, bytesRead: number): void => {
      reading = false;
      if (failed) return settleFailure();
      if (err !== null) return fail(readError(err));
      let produced: Buffer;
      try {
        if (bytesRead === 0) {
          ended = true;
          produced = step.end();
        } else {
          produced = step.chunk(buf.subarray(0, bytesRead));
        }
      } catch (e) {
        return fail(e);
      }
      if (produced.length > 0) {
        ready = produced;
        advance();
      } else if (ended) {
        if (writing === undefined) resolve();
      } else {
        // Nothing to write for this chunk, and nothing refers to `buf` any more: read on into it.
        startRead();
      }
    };
    /** Start writing the ready chunk once no write is in flight, and read the next chunk meanwhile. */
    const advance = (): void => {
      if (writing !== undefined || ready === undefined) return;
      writing = ready;
      ready = undefined;
      writtenBytes = 0;
      startWrite(0);
      if (!ended && !failed) {
        // `spare` held chunk k-1, whose write has completed.
        [buf, spare] = [spare, buf];
        startRead();
      }
    };
    const onWrite = (err: NodeJS.ErrnoException | null, n: number): void => {
      const w = writing as Buffer;
      if (err === null) {
        // A write that makes no progress would otherwise be retried forever.
        if (n === 0) err = Object.assign(new Error('write made no progress'), { code: 'EIO' });
        writtenBytes += n;
        if (writtenBytes < w.length && !failed && err === null) {
          startWrite(writtenBytes);
          return;
        }
      }
      writing = undefined;
      if (err !== null) return fail(err);
      if (failed) return settleFailure();
      try {
        step.written?.(w);
      } catch (e) {
        return fail(e);
      }
      if (ready !== undefined) advance();
      else if (ended) resolve();
    };
    startRead();
  });
}
