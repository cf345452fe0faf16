/**
 * Readers for the few single DER values carried in vendor certificate extensions (AMD VCEK TCB and
 * hardware-id extensions, Intel PCK SGX extensions). Each accepts exactly one canonical value that
 * fills its input and returns undefined otherwise; callers turn that into their own coded error.
 */

/** A DER TLV header at `offset`: tag, content start and content length, or undefined. */
export function readTlv(der: Uint8Array, offset = 0): { tag: number; start: number; length: number } | undefined {
  if (offset + 2 > der.length) return undefined;
  const tag = der[offset] as number;
  const first = der[offset + 1] as number;
  let start = offset + 2;
  let length = first;
  if (first >= 0x80) {
    const n = first & 0x7f;
    if (n === 0 || n > 3 || start + n > der.length) return undefined;
    length = 0;
    for (let i = 0; i < n; i++) length = length * 256 + (der[start + i] as number);
    // DER: the long form only for lengths ≥ 128, in the fewest bytes.
    if (length < 0x80 || (der[start] as number) === 0) return undefined;
    start += n;
  }
  if (start + length > der.length) return undefined;
  return { tag, start, length };
}

/** A non-negative DER INTEGER below 2^31 filling `der`. */
export function derSmallUint(der: Uint8Array): number | undefined {
  const tlv = readTlv(der);
  if (tlv === undefined || tlv.tag !== 0x02 || tlv.length < 1 || tlv.length > 4 || tlv.start + tlv.length !== der.length) return undefined;
  const c = der.subarray(tlv.start);
  if ((c[0] as number) & 0x80) return undefined; // negative
  if (c.length > 1 && c[0] === 0 && ((c[1] as number) & 0x80) === 0) return undefined; // non-minimal
  let v = 0;
  for (const b of c) v = v * 256 + b;
  return v;
}

/** The contents of a DER value of `tag` filling `der`. */
export function derContents(der: Uint8Array, tag: number): Uint8Array | undefined {
  const tlv = readTlv(der);
  if (tlv === undefined || tlv.tag !== tag || tlv.start + tlv.length !== der.length) return undefined;
  return der.subarray(tlv.start, tlv.start + tlv.length);
}

export const DER_OCTET_STRING = 0x04;
export const DER_IA5_STRING = 0x16;
export const DER_SEQUENCE = 0x30;
export const DER_OID = 0x06;
export const DER_ENUMERATED = 0x0a;
