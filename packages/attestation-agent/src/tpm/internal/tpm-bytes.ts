import { TpmError } from '../../errors.js';

/** Big-endian writer for TPM wire structures (TPM 2.0 Part 1, 18: all integers are big-endian). */
export class TpmWriter {
  private readonly parts: Uint8Array[] = [];

  u8(v: number): this {
    this.parts.push(Uint8Array.of(v & 0xff));
    return this;
  }

  u16(v: number): this {
    const b = new Uint8Array(2);
    new DataView(b.buffer).setUint16(0, v);
    this.parts.push(b);
    return this;
  }

  u32(v: number): this {
    const b = new Uint8Array(4);
    new DataView(b.buffer).setUint32(0, v >>> 0);
    this.parts.push(b);
    return this;
  }

  u64(v: bigint): this {
    const b = new Uint8Array(8);
    new DataView(b.buffer).setBigUint64(0, v);
    this.parts.push(b);
    return this;
  }

  bytes(b: Uint8Array): this {
    this.parts.push(b);
    return this;
  }

  /** A TPM2B: 16-bit size then the bytes. */
  tpm2b(b: Uint8Array): this {
    if (b.length > 0xffff) throw new TypeError('TPM2B content longer than 65535 bytes');
    return this.u16(b.length).bytes(b);
  }

  finish(): Uint8Array {
    let n = 0;
    for (const p of this.parts) n += p.length;
    const out = new Uint8Array(n);
    let o = 0;
    for (const p of this.parts) {
      out.set(p, o);
      o += p.length;
    }
    return out;
  }
}

/**
 * Big-endian reader that checks every length against the bytes left before slicing, and throws a
 * coded error (never a RangeError) when input is short.
 */
export class TpmReader {
  private off = 0;
  private readonly view: DataView;

  constructor(
    private readonly buf: Uint8Array,
    private readonly what: string,
  ) {
    this.view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  }

  get offset(): number {
    return this.off;
  }

  get remaining(): number {
    return this.buf.length - this.off;
  }

  private need(n: number): void {
    // SECURITY: a truncated or lying length field must not read past the buffer (TPM 2.0 Part 2, 10.4 TPM2B)
    if (n > this.remaining) {
      throw new TpmError('TPM_BAD_RESPONSE', `${this.what}: truncated at offset ${this.off}`);
    }
  }

  u8(): number {
    this.need(1);
    return this.view.getUint8(this.off++);
  }

  u16(): number {
    this.need(2);
    const v = this.view.getUint16(this.off);
    this.off += 2;
    return v;
  }

  u32(): number {
    this.need(4);
    const v = this.view.getUint32(this.off);
    this.off += 4;
    return v;
  }

  u64(): bigint {
    this.need(8);
    const v = this.view.getBigUint64(this.off);
    this.off += 8;
    return v;
  }

  bytes(n: number): Uint8Array {
    this.need(n);
    const v = this.buf.subarray(this.off, this.off + n);
    this.off += n;
    return v;
  }

  /** A TPM2B; `max` is the largest size the structure allows. */
  tpm2b(max: number): Uint8Array {
    const n = this.u16();
    // SECURITY: an oversized TPM2B size would let a peer smuggle data past the structure's bound (TPM 2.0 Part 2, 10.4)
    if (n > max) throw new TpmError('TPM_BAD_RESPONSE', `${this.what}: TPM2B of ${n} bytes exceeds ${max}`);
    return this.bytes(n);
  }

  /** Require that the whole buffer was consumed. */
  end(): void {
    // SECURITY: trailing bytes after a structure mean the framing is not what we parsed (TPM 2.0 Part 2)
    if (this.remaining !== 0) {
      throw new TpmError('TPM_BAD_RESPONSE', `${this.what}: ${this.remaining} trailing bytes`);
    }
  }
}
