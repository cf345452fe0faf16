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

/** Dotted text of an OBJECT IDENTIFIER's contents; '' when the encoding is incomplete. */
export function decodeOid(c: Uint8Array): string {
  const parts: number[] = [];
  let v = 0;
  for (const [i, byte] of c.entries()) {
    v = v * 128 + (byte & 0x7f);
    if ((byte & 0x80) === 0) {
      if (parts.length === 0) parts.push(v < 80 ? Math.floor(v / 40) : 2, v < 80 ? v % 40 : v - 80);
      else parts.push(v);
      v = 0;
    } else if (i === c.length - 1) return '';
  }
  return parts.join('.');
}

export const DER_OCTET_STRING = 0x04;
export const DER_IA5_STRING = 0x16;
export const DER_SEQUENCE = 0x30;
export const DER_OID = 0x06;
export const DER_ENUMERATED = 0x0a;

/**
 * The extensions (OID → extnValue contents) of a DER X.509 certificate, read by walking
 * Certificate → TBSCertificate → [3] Extensions. Undefined when the structure is not what RFC 5280
 * §4.1 defines or an OID repeats. node:crypto parses the same bytes for everything else.
 */
export function certificateExtensions(der: Uint8Array): Map<string, Uint8Array> | undefined {
  const cert = readTlv(der);
  if (cert === undefined || cert.tag !== DER_SEQUENCE || cert.start + cert.length !== der.length) return undefined;
  const tbs = readTlv(der, cert.start);
  if (tbs === undefined || tbs.tag !== DER_SEQUENCE) return undefined;
  const end = tbs.start + tbs.length;
  const out = new Map<string, Uint8Array>();
  for (let off = tbs.start; off < end; ) {
    const f = readTlv(der, off);
    if (f === undefined || f.start + f.length > end) return undefined;
    off = f.start + f.length;
    if (f.tag !== 0xa3) continue;
    const list = readTlv(der, f.start);
    if (list === undefined || list.tag !== DER_SEQUENCE || list.start + list.length !== off) return undefined;
    for (let e = list.start; e < off; ) {
      const ext = readTlv(der, e);
      if (ext === undefined || ext.tag !== DER_SEQUENCE) return undefined;
      const extEnd = ext.start + ext.length;
      const oid = readTlv(der, ext.start);
      if (oid === undefined || oid.tag !== DER_OID) return undefined;
      let next = oid.start + oid.length;
      const maybeCritical = readTlv(der, next);
      if (maybeCritical?.tag === 0x01) next = maybeCritical.start + maybeCritical.length;
      const value = readTlv(der, next);
      if (value === undefined || value.tag !== DER_OCTET_STRING || value.start + value.length !== extEnd) return undefined;
      const key = decodeOid(der.subarray(oid.start, oid.start + oid.length));
      if (key === '' || out.has(key)) return undefined;
      out.set(key, der.subarray(value.start, extEnd));
      e = extEnd;
    }
  }
  return out;
}
