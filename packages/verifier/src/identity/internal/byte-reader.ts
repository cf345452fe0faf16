import { IdentityError, type IdentityErrorCode } from '../errors.js';

/**
 * Big-endian cursor over TPM marshalled bytes. Every read checks the bytes left *before*
 * slicing, and a short read throws a coded error instead of returning garbage.
 */
export class ByteReader {
  private offset = 0;

  constructor(
    private readonly bytes: Uint8Array,
    private readonly errorCode: IdentityErrorCode,
    private readonly what: string,
  ) {}

  get remaining(): number {
    return this.bytes.length - this.offset;
  }

  get position(): number {
    return this.offset;
  }

  private need(n: number, field: string): void {
    // SECURITY: a length field pointing past the end of the buffer must not read out of bounds
    // or allocate attacker-chosen sizes (TPM 2.0 Part 2 §4: marshalled sizes are untrusted).
    if (n > this.remaining) {
      throw new IdentityError(this.errorCode, `${this.what}: truncated at ${field}`);
    }
  }

  u8(field: string): number {
    this.need(1, field);
    return this.bytes[this.offset++] as number;
  }

  u16(field: string): number {
    this.need(2, field);
    const v = ((this.bytes[this.offset] as number) << 8) | (this.bytes[this.offset + 1] as number);
    this.offset += 2;
    return v;
  }

  u32(field: string): number {
    this.need(4, field);
    const b = this.bytes;
    const o = this.offset;
    const v = (((b[o] as number) << 24) >>> 0) + ((b[o + 1] as number) << 16) + ((b[o + 2] as number) << 8) + (b[o + 3] as number);
    this.offset += 4;
    return v >>> 0;
  }

  bytesN(n: number, field: string): Uint8Array {
    this.need(n, field);
    const out = this.bytes.slice(this.offset, this.offset + n);
    this.offset += n;
    return out;
  }

  /** A TPM2B: u16 size then that many bytes; `max` bounds the size before anything is copied. */
  tpm2b(max: number, field: string): Uint8Array {
    const size = this.u16(field);
    // SECURITY: oversized TPM2B sizes are rejected against the type's maximum before copying
    // (TPM 2.0 Part 2 §10.4: TPM2B sizes are bounded by the buffer's declared maximum).
    if (size > max) {
      throw new IdentityError(this.errorCode, `${this.what}: ${field} size ${size} exceeds ${max}`);
    }
    return this.bytesN(size, field);
  }

  /** Throws unless every byte was consumed. */
  end(): void {
    // SECURITY: trailing bytes would let two different byte strings describe the same object
    // (and thus different names); exact consumption keeps the name binding unambiguous.
    if (this.remaining !== 0) {
      throw new IdentityError(this.errorCode, `${this.what}: ${this.remaining} trailing bytes`);
    }
  }
}

/** Big-endian u16 / u32 encoders for building wire structures. */
export function u16be(v: number): Uint8Array {
  return Uint8Array.of((v >>> 8) & 0xff, v & 0xff);
}

export function u32be(v: number): Uint8Array {
  return Uint8Array.of((v >>> 24) & 0xff, (v >>> 16) & 0xff, (v >>> 8) & 0xff, v & 0xff);
}

export function concatBytes(...parts: Uint8Array[]): Uint8Array {
  let len = 0;
  for (const p of parts) len += p.length;
  const out = new Uint8Array(len);
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

/** TPM2B: u16 size then the bytes. */
export function tpm2b(b: Uint8Array): Uint8Array {
  return concatBytes(u16be(b.length), b);
}
