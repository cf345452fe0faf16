import { read, write } from 'node:fs';

/** What {@link pump} does with the bytes it reads. Each may throw, which fails the pump. */
export interface PumpStep {
  /** Consume one chunk read from the source (valid only during the call); return the bytes to write. */
  chunk(chunk: Buffer): Buffer;
  /** The source is exhausted: run the final checks and return the last bytes to write. */
  end(): Buffer;
  /** Called once a returned buffer has been written in full (to release it). */
  written?(buf: Buffer): void;
}

/** Read buffers at most: one being read, one read and waiting, one aliased by a pass-through chunk waiting for or under write. */
const MAX_BUFFERS = 3;

/**
 * Copy file descriptor `src` to `out` through `step`, with the disk and the CPU working at once:
 * while chunk k is being written (in the libuv thread pool), chunk k+1 is run through `step` on
 * this thread and chunk k+2 is read. The stages hand over through single slots (one read in
 * flight, one read chunk waiting, one output waiting, one write in flight), so at most two
 * outputs of `step` are held and at most three read buffers of `chunkBytes` exist (two when
 * `step` never passes its input through): memory use is fixed whatever the file size. Writes are
 * sequential and in order, at the descriptor's current position.
 *
 * Plain callbacks rather than FileHandle promises: a few hundred bytes of garbage per chunk
 * instead of several KiB, so a large layer does not make V8 grow its young generation.
 *
 * Resolves after `step.end()` returned and every byte was written. On any error (read, write, a
 * throw from `step`, a synchronous fs argument error) it stops, waits for the operations in flight
 * to finish (so the caller may close and delete the files at once), and rejects with the first
 * error; `readError` wraps read failures.
 */
export function pump(src: number, out: number, chunkBytes: number, step: PumpStep, readError: (cause: unknown) => Error): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const bufs: Buffer[] = [Buffer.allocUnsafeSlow(chunkBytes)];
    let reading: Buffer | undefined;
    let eof = false;
    /** Read, not yet run through `step` (two variables rather than an object: no garbage per chunk). */
    let filled: Buffer | undefined;
    let filledBytes = 0;
    /** Produced by `step`, waiting for the write in flight; `readyBuf` is the read buffer it aliases, if any. */
    let ready: Buffer | undefined;
    let readyBuf: Buffer | undefined;
    let writing: Buffer | undefined;
    let writingBuf: Buffer | undefined;
    let writtenBytes = 0;
    let ended = false;
    let failed = false;
    let failure: unknown;
    let settled = false;

    const setFailed = (err: unknown): void => {
      if (failed) return;
      failed = true;
      failure = err;
      filled = undefined;
      ready = undefined;
      readyBuf = undefined;
    };
    const freeBuffer = (): Buffer | undefined => {
      for (const b of bufs) if (b !== reading && b !== filled && b !== readyBuf && b !== writingBuf) return b;
      if (bufs.length >= MAX_BUFFERS) return undefined;
      const b = Buffer.allocUnsafeSlow(chunkBytes);
      bufs.push(b);
      return b;
    };
    const startRead = (buf: Buffer): void => {
      reading = buf;
      try {
        read(src, buf, 0, chunkBytes, null, onRead);
      } catch (err) {
        // Argument validation throws synchronously (e.g. a step that detached a read buffer).
        reading = undefined;
        setFailed(err);
      }
    };
    const startWrite = (): void => {
      const w = writing as Buffer;
      try {
        write(out, w, writtenBytes, w.length - writtenBytes, null, onWrite);
      } catch (err) {
        writing = undefined;
        writingBuf = undefined;
        setFailed(err);
      }
    };
    /**
     * Start reading the next chunk if no read is in flight and the read slot is free, or is about
     * to be emptied (`consuming`: called right before the waiting chunk is processed).
     */
    const readAhead = (consuming: boolean): void => {
      if (failed || eof || reading !== undefined || (filled !== undefined && !consuming)) return;
      const buf = freeBuffer();
      if (buf !== undefined) startRead(buf);
    };
    /** Move every stage that can move; settle when done, or failed with nothing in flight. */
    const tick = (): void => {
      for (let moved = true; moved && !failed; ) {
        moved = false;
        if (filled !== undefined && ready === undefined) {
          // Read chunk k+1 in the thread pool while this thread runs chunk k through `step`.
          readAhead(true);
          const buf = filled;
          const bytes = filledBytes;
          filled = undefined;
          moved = true;
          try {
            let produced: Buffer;
            if (bytes === 0) {
              ended = true;
              produced = step.end();
            } else {
              produced = step.chunk(bytes === chunkBytes ? buf : buf.subarray(0, bytes));
            }
            if (produced.length > 0) {
              ready = produced;
              readyBuf = produced.buffer === buf.buffer ? buf : undefined;
            }
          } catch (err) {
            setFailed(err);
          }
        }
        if (!failed && writing === undefined && ready !== undefined) {
          writing = ready;
          writingBuf = readyBuf;
          ready = undefined;
          readyBuf = undefined;
          writtenBytes = 0;
          moved = true;
          startWrite();
        }
      }
      readAhead(false);
      if (settled) return;
      if (failed) {
        if (reading === undefined && writing === undefined) {
          settled = true;
          reject(failure);
        }
      } else if (ended && ready === undefined && writing === undefined) {
        settled = true;
        resolve();
      }
    };
    const onRead = (err: NodeJS.ErrnoException | null, bytesRead: number): void => {
      const buf = reading as Buffer;
      reading = undefined;
      if (err !== null) setFailed(readError(err));
      else if (filled !== undefined) setFailed(new Error('pump: a read completed while the previous chunk still waited')); // never drop a chunk
      else if (!failed) {
        if (bytesRead === 0) eof = true;
        filled = buf;
        filledBytes = bytesRead;
      }
      tick();
    };
    const onWrite = (err: NodeJS.ErrnoException | null, n: number): void => {
      const w = writing as Buffer;
      // A write that makes no progress would otherwise be retried forever.
      const error = err ?? (n === 0 ? Object.assign(new Error('write made no progress'), { code: 'EIO' }) : null);
      if (error === null) {
        writtenBytes += n;
        if (writtenBytes < w.length && !failed) return startWriteOrFail();
      }
      writing = undefined;
      writingBuf = undefined;
      if (error !== null) setFailed(error);
      else if (!failed) {
        try {
          step.written?.(w);
        } catch (e) {
          setFailed(e);
        }
      }
      tick();
    };
    const startWriteOrFail = (): void => {
      startWrite();
      if (failed) tick();
    };
    tick();
  });
}
