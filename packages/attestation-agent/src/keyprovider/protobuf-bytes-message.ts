import { KeyProviderError } from './errors.js';

/**
 * Protobuf wire codec for the key-provider messages, each `message { bytes X = 1; }`
 * (containers/ocicrypt utils/keyprovider/keyprovider.proto). Hand-written: one length-delimited
 * field does not justify a code generator, and the decoder below checks every length against
 * the bytes left before slicing.
 */

const FIELD_1_LEN = 0x0a; // (1 << 3) | wire type 2
const WIRE_VARINT = 0;
const WIRE_I64 = 1;
const WIRE_LEN = 2;
const WIRE_I32 = 5;

function bad(msg: string): KeyProviderError {
  return new KeyProviderError('REQUEST_INVALID', `protobuf: ${msg}`);
}

function encodeVarint(n: number): number[] {
  const out: number[] = [];
  let v = n;
  while (v >= 0x80) {
    out.push((v % 0x80) | 0x80);
    v = Math.floor(v / 0x80);
  }
  out.push(v);
  return out;
}

/** Read a varint at `pos`; returns [value, next position]. Values above 2^53 are refused. */
function readVarint(buf: Uint8Array, pos: number): [number, number] {
  let value = 0;
  let scale = 1;
  for (let i = 0; i < 10; i++) {
    // SECURITY: a varint running past the end of the message is truncated input (protobuf encoding spec).
    if (pos + i >= buf.length) throw bad('truncated varint');
    const b = buf[pos + i] as number;
    value += (b & 0x7f) * scale;
    // SECURITY: lengths beyond 2^53 cannot be exact in a JS number; no real message is that big.
    if (value > Number.MAX_SAFE_INTEGER) throw bad('varint too large');
    if ((b & 0x80) === 0) return [value, pos + i + 1];
    scale *= 0x80;
  }
  // SECURITY: a varint is at most 10 bytes (protobuf encoding spec).
  throw bad('varint longer than 10 bytes');
}

/** Encode `{ 1: bytes }`. An empty payload encodes as an empty message (proto3 default). */
export function encodeBytesMessage(payload: Uint8Array): Buffer {
  if (payload.byteLength === 0) return Buffer.alloc(0);
  return Buffer.concat([Buffer.from([FIELD_1_LEN, ...encodeVarint(payload.byteLength)]), payload]);
}

/**
 * Decode `{ 1: bytes }`: returns field 1 (the last occurrence wins, as proto3 merges scalars),
 * or an empty buffer when absent. Unknown fields are skipped. Refuses truncated or oversized
 * input.
 */
export function decodeBytesMessage(buf: Uint8Array, maxBytes: number): Buffer {
  // SECURITY: bound what a peer makes us hold (STYLE §6).
  if (buf.byteLength > maxBytes) throw bad('message too large');
  let pos = 0;
  let value: Buffer = Buffer.alloc(0);
  while (pos < buf.length) {
    const [key, afterKey] = readVarint(buf, pos);
    const field = Math.floor(key / 8);
    const wire = key % 8;
    // SECURITY: field number 0 is invalid in protobuf; refusing it stops junk from parsing as empty.
    if (field === 0) throw bad('field number 0');
    pos = afterKey;
    switch (wire) {
      case WIRE_VARINT:
        pos = readVarint(buf, pos)[1];
        break;
      case WIRE_I64:
        pos += 8;
        break;
      case WIRE_I32:
        pos += 4;
        break;
      case WIRE_LEN: {
        const [len, start] = readVarint(buf, pos);
        // SECURITY: a length field pointing past the end is refused before slicing (STYLE §6).
        if (len > buf.length - start) throw bad('length-delimited field runs past the end');
        if (field === 1) value = Buffer.from(buf.subarray(start, start + len));
        pos = start + len;
        break;
      }
      default:
        // SECURITY: groups (3, 4) and reserved wire types never appear in these messages.
        throw bad(`unsupported wire type ${wire}`);
    }
    // SECURITY: fixed-width fields must fit in what is left.
    if (pos > buf.length) throw bad('truncated field');
    // SECURITY: field 1 must be length-delimited; a varint field 1 is a type confusion.
    if (field === 1 && wire !== WIRE_LEN) throw bad('field 1 is not bytes');
  }
  return value;
}
