import { createHash, type Hash } from 'node:crypto';
import { Transform, type TransformCallback } from 'node:stream';
import { OcicryptError } from '../errors.js';

/**
 * Size and digest check of a blob read chunk by chunk: `update` fails as soon as more than `size`
 * bytes came, `final` unless exactly `size` bytes hashing to `digest` came.
 */
export class DigestCheck {
  readonly #hash: Hash = createHash('sha256');
  readonly #digest: string;
  readonly #size: number;
  #seen = 0;

  constructor(digest: string, size: number) {
    this.#digest = digest;
    this.#size = size;
  }

  update(chunk: Uint8Array): void {
    this.#seen += chunk.length;
    // SECURITY: stop as soon as a blob is longer than its descriptor says, so a hostile blob
    // cannot make us read (or write) without bound (OCI image-spec descriptor.md, "size").
    if (this.#seen > this.#size) throw new OcicryptError('OCI_BLOB_SIZE_MISMATCH', 'blob is longer than its descriptor size');
    this.#hash.update(chunk);
  }

  final(): void {
    // SECURITY: a truncated blob is refused (OCI image-spec descriptor.md, "size").
    if (this.#seen !== this.#size) throw new OcicryptError('OCI_BLOB_SIZE_MISMATCH', 'blob is shorter than its descriptor size');
    // SECURITY: content addressing — a blob whose bytes do not hash to its digest is refused
    // (OCI image-spec descriptor.md, "Verification").
    if ('sha256:' + this.#hash.digest('hex') !== this.#digest) throw new OcicryptError('OCI_BLOB_DIGEST_MISMATCH', 'blob content does not match its digest');
  }
}

/**
 * {@link DigestCheck} as a pass-through stream: the error surfaces at end of stream, before the
 * consumer's final step, so callers that stage output and rename only on success never publish
 * bad data.
 */
export class DigestVerifier extends Transform {
  readonly #check: DigestCheck;

  constructor(digest: string, size: number) {
    super();
    this.#check = new DigestCheck(digest, size);
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    try {
      this.#check.update(chunk);
    } catch (err) {
      cb(err as Error);
      return;
    }
    cb(null, chunk);
  }

  override _flush(cb: TransformCallback): void {
    try {
      this.#check.final();
    } catch (err) {
      cb(err as Error);
      return;
    }
    cb();
  }
}

/** Hashes and counts what flows through; read `digest`/`size` after the stream ends. */
export class DigestCounter extends Transform {
  readonly #hash: Hash = createHash('sha256');
  #size = 0;
  #digest: string | undefined;

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.#size += chunk.length;
    this.#hash.update(chunk);
    cb(null, chunk);
  }

  override _flush(cb: TransformCallback): void {
    this.#digest = 'sha256:' + this.#hash.digest('hex');
    cb();
  }

  get size(): number {
    return this.#size;
  }

  get digest(): string {
    if (this.#digest === undefined) throw new Error('DigestCounter read before end of stream');
    return this.#digest;
  }
}
