import type { ImageProgress, ProgressListener } from '@keyhold/ocicrypt';

/**
 * A one-line progress bar for a terminal (`\r`-redrawn, at most ~10 redraws per second), or
 * nothing when `stream` is not a TTY. Call `done()` to end the line.
 */
export function terminalProgress(stream: NodeJS.WritableStream, label: string): { onProgress: ProgressListener | undefined; done(): void } {
  if ((stream as { isTTY?: boolean }).isTTY !== true) return { onProgress: undefined, done: () => undefined };
  let last = 0;
  let drawn = false;
  const draw = (p: ImageProgress): void => {
    const frac = p.bytesTotal === 0 ? 1 : Math.min(1, p.bytesDone / p.bytesTotal);
    const width = 30;
    const fill = Math.round(frac * width);
    const mb = (n: number): string => (n / 1_048_576).toFixed(1);
    stream.write(`\r${label} layer ${p.layer + 1}/${p.layers} [${'#'.repeat(fill)}${'.'.repeat(width - fill)}] ${mb(p.bytesDone)}/${mb(p.bytesTotal)} MiB ${(frac * 100).toFixed(0)}%`);
    drawn = true;
  };
  let latest: ImageProgress | undefined;
  return {
    onProgress(p) {
      latest = p;
      const now = Date.now();
      if (now - last < 100 && p.bytesDone < p.bytesTotal) return;
      last = now;
      draw(p);
    },
    done() {
      if (latest !== undefined) draw(latest);
      if (drawn) stream.write('\n');
    },
  };
}
