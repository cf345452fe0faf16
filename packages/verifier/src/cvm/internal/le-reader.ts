import { CvmError, type CvmErrorCode } from '../errors.js';

/**
 * Little-endian cursor over firmware structures (HCL reports, SEV-SNP reports, TDX quotes). Every
 * read checks the bytes left *before* slicing, so a hostile length field cannot read out of bounds
 * or drive an allocation; `bytes()` returns views, never copies. Errors carry `code` and name the
 * field only.
 */
export class LeReader {
  readonly #bytes: Uint8Array;
  readonly #view: DataView;
  readonly #code: CvmErrorCode;
  readonly #what: string;
  #offset: number;

  constructor(bytes: Uint8Array, code: CvmErrorCode, what: string, offset = 0) {
    this.#bytes = bytes;
    this.#view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    this.#code = code;
    this.#what = what;
    this.#offset = offset;
  }

  get offset(): number {
    return this.#offset;
  }

  get remaining(): number {
    return this.#bytes.byteLength - this.#offset;
  }

  #need(n: number, field: string): void {
    // SECURITY: stops out-of-bounds reads on truncated input; sizes in these structures are
    // attacker-controlled until a signature covers them.
    if (!Number.isSafeInteger(n) || n < 0 || n > this.remaining) {
      throw new CvmError(this.#code, `${this.#what}: ${field} needs ${n} bytes at offset ${this.#offset}, ${this.remaining} left`);
    }
  }

  u8(field: string): number {
    this.#need(1, field);
    return this.#view.getUint8(this.#offset++);
  }

  u16(field: string): number {
    this.#need(2, field);
    const v = this.#view.getUint16(this.#offset, true);
    this.#offset += 2;
    return v;
  }

  u32(field: string): number {
    this.#need(4, field);
    const v = this.#view.getUint32(this.#offset, true);
    this.#offset += 4;
    return v;
  }

  u64(field: string): bigint {
    this.#need(8, field);
    const v = this.#view.getBigUint64(this.#offset, true);
    this.#offset += 8;
    return v;
  }

  /** A view of the next `n` bytes. */
  bytes(n: number, field: string): Uint8Array {
    this.#need(n, field);
    const v = this.#bytes.subarray(this.#offset, this.#offset + n);
    this.#offset += n;
    return v;
  }

  skip(n: number, field: string): void {
    this.#need(n, field);
    this.#offset += n;
  }
}
