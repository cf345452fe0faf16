import type { ProgressListener } from './types.js';

/** Cumulative byte counting across layers, reported to an optional listener. */
export class ProgressTracker {
  readonly #listener: ProgressListener | undefined;
  readonly #layers: number;
  readonly #bytesTotal: number;
  #layer = 0;
  #bytesDone = 0;

  constructor(listener: ProgressListener | undefined, layers: number, bytesTotal: number) {
    this.#listener = listener;
    this.#layers = layers;
    this.#bytesTotal = bytesTotal;
  }

  startLayer(index: number): void {
    this.#layer = index;
    this.#emit();
  }

  readonly add = (bytes: number): void => {
    this.#bytesDone += bytes;
    this.#emit();
  };

  #emit(): void {
    this.#listener?.({ layer: this.#layer, layers: this.#layers, bytesDone: this.#bytesDone, bytesTotal: this.#bytesTotal });
  }
}
