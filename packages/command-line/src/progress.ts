import { SingleBar } from 'cli-progress';

/** One progress sample of a whole-image operation (the shape @keyhold/ocicrypt reports). */
export interface ByteProgress {
  readonly layer: number;
  readonly layers: number;
  readonly bytesDone: number;
  readonly bytesTotal: number;
}

export interface ProgressBar {
  /** Undefined when the stream is not a terminal: callers then pass no listener at all. */
  readonly onProgress: ((p: ByteProgress) => void) | undefined;
  /** End the bar (drawing its last state); safe to call twice or when nothing was drawn. */
  done(): void;
}

const MIB = 1_048_576;

/**
 * A cli-progress bar for the image commands (`keyhold image encrypt`, `keyhold-agent image
 * decrypt`) on `stream` — `<label> layer 2/5 [████░░░░] 40% | 12.0/30.0 MiB` — or nothing when the
 * stream is not a terminal (logs and pipes stay clean).
 */
export function imageProgressBar(stream: NodeJS.WritableStream, label: string): ProgressBar {
  if ((stream as { isTTY?: boolean }).isTTY !== true) return { onProgress: undefined, done: () => undefined };
  const bar = new SingleBar({
    stream: stream as NodeJS.WriteStream,
    format: `${label} layer {layer}/{layers} [{bar}] {percentage}% | {doneMiB}/{totalMiB} MiB`,
    barCompleteChar: '#',
    barIncompleteChar: '.',
    barsize: 30,
    hideCursor: true,
    fps: 10,
  });
  let started = false;
  let stopped = false;
  return {
    onProgress(p) {
      if (stopped) return;
      const payload = { layer: p.layer + 1, layers: p.layers, doneMiB: (p.bytesDone / MIB).toFixed(1), totalMiB: (p.bytesTotal / MIB).toFixed(1) };
      if (!started) {
        bar.start(Math.max(p.bytesTotal, 1), p.bytesDone, payload);
        started = true;
        return;
      }
      bar.setTotal(Math.max(p.bytesTotal, 1));
      bar.update(p.bytesDone, payload);
    },
    done() {
      if (started && !stopped) bar.stop();
      stopped = true;
    },
  };
}
