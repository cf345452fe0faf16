import { MessageChannel } from 'node:worker_threads';

/**
 * A closed channel: a message posted on it is serialised (its transfer list detached) and then
 * dropped, which frees the transferred memory at once.
 */
const sink = new MessageChannel();
sink.port1.close();
sink.port2.close();

/**
 * Give an exclusively owned buffer's memory back now rather than at the next garbage collection.
 *
 * Why: node:crypto returns every `update` result in a fresh off-heap buffer, and V8 collects such
 * buffers only when their total grows by tens of MiB, so a streamed 256 MiB layer would hold
 * ~40 MiB of dead chunks at any time. Transferring the chunk's ArrayBuffer into a message on a
 * closed MessagePort detaches it (the buffer becomes empty everywhere) and the dropped message
 * frees the memory immediately; no flags, no forced GC.
 *
 * Only whole ArrayBuffers are released: a view into a shared or pooled buffer (small Buffers share
 * an 8 KiB pool) is left alone, since detaching it would empty its neighbours. Callers must hold
 * the only reference (e.g. a cipher's output after it has been written).
 */
export function releaseBuffer(buf: Uint8Array): void {
  const ab = buf.buffer;
  if (!(ab instanceof ArrayBuffer) || buf.byteOffset !== 0 || buf.byteLength !== ab.byteLength || ab.byteLength < 4096) return;
  sink.port1.postMessage(null, [ab]);
}
