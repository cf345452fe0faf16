/** An image in an OCI layout directory, named by its `org.opencontainers.image.ref.name`. */
export interface OciImageRef {
  readonly dir: string;
  readonly tag: string;
}

/** Progress of a whole-image operation, in layer bytes read from the input. */
export interface ImageProgress {
  /** 0-based index of the layer being processed. */
  readonly layer: number;
  readonly layers: number;
  readonly bytesDone: number;
  readonly bytesTotal: number;
}

export type ProgressListener = (p: ImageProgress) => void;

/** What changed for one layer. */
export interface LayerResult {
  readonly index: number;
  readonly mediaType: string;
  /** Digest of the layer as written to the output. */
  readonly digest: string;
  readonly size: number;
  /** Whether this call encrypted / decrypted the layer (false: copied through). */
  readonly transformed: boolean;
}

export interface ImageResult {
  /** Descriptor of the manifest written and tagged in the output layout. */
  readonly manifest: { readonly mediaType: string; readonly digest: string; readonly size: number };
  readonly layers: readonly LayerResult[];
}
