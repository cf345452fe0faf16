import { VerifierError } from '../../errors.js';

/**
 * Cursor over a TPM-marshalled (big-endian) buffer. Every read checks the bytes left first, and
 * sized reads check the declared size against a structure-specific limit and the bytes left
 * *before* copying, so hostile length fields cannot cause large allocations or out-of-bounds reads.
 * `what` names the structure for error messages (never the data).
 */
export class TpmReader {
  readonly #bytes: Uint8Array;
  readonly #view: DataView;
  #offset = 0;

  constructor(bytes: Uint8Array) {
    this.#bytes = bytes;
    this.#view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }

  get offset(): number {
    return this.#offset;
  }

  get remaining(): number {
    return this.#bytes.byteLength - this.#offset;
  }

  #need(n: number, what: string): void {
    // SECURITY: stops out-of-bounds reads on truncated input (TPM 2.0 Part 1 §18, marshalling).
    if (n > this.remaining) {
      throw new VerifierError('TPM_TRUNCATED', `${what}: needs ${n} bytes at offset ${this.#offset}, ${this.remaining} left`);
    }
  }

  u8(what: string): number {
    this.#need(1, what);
    const v = this.#view.getUint8(this.#offset);
    this.#offset += 1;
    return v;
  }

  u16(what: string): number {
    this.#need(2, what);
    const v = this.#view.getUint16(this.#offset, false);
    this.#offset += 2;
    return v;
  }

  u32(what: string): number {
    this.#need(4, what);
    const v = this.#view.getUint32(this.#offset, false);
    this.#offset += 4;
    return v;
  }

  u64(what: string): bigint {
    this.#need(8, what);
    const v = this.#view.getBigUint64(this.#offset, false);
    this.#offset += 8;
    return v;
  }

  /** A copy of the next `n` bytes. */
  bytes(n: number, what: string): Uint8Array {
    this.#need(n, what);
    const out = this.#bytes.slice(this.#offset, this.#offset + n);
    this.#offset += n;
    return out;
  }

  /** A TPM2B: UINT16 size then `size` bytes, with `size` bounded by `maxSize`. */
  tpm2b(maxSize: number, what: string): Uint8Array {
    const size = this.u16(`${what}.size`);
    // SECURITY: stops oversized length fields from exceeding the structure's TPM-defined maximum
    // (TPM 2.0 Part 2 §10.4, TPM2B size limits); checked before any copy is made.
    if (size > maxSize) {
      throw new VerifierError('TPM_LENGTH_EXCEEDED', `${what}: size ${size} exceeds maximum ${maxSize}`);
    }
    return this.bytes(size, what);
  }

  /** Require that the whole buffer was consumed. */
  end(what: string): void {
    // SECURITY: stops appended data from riding along unsigned or being interpreted by another
    // parser differently (parser differential); a TPM structure fills its buffer exactly.
    if (this.remaining !== 0) {
      throw new VerifierError('TPM_TRAILING_BYTES', `${what}: ${this.remaining} trailing bytes at offset ${this.#offset}`);
    }
  }
}
