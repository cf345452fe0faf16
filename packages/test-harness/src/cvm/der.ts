/**
 * A few DER encoders for the synthetic certificates' vendor extensions (test-only). Lengths up to
 * 64 KiB; values are assembled byte by byte so the tests do not depend on the verifier's decoders.
 */
function tlv(tag: number, content: Uint8Array): Uint8Array {
  const n = content.length;
  const len = n < 0x80 ? [n] : n < 0x100 ? [0x81, n] : [0x82, n >> 8, n & 0xff];
  return Uint8Array.from([tag, ...len, ...content]);
}

export function derInteger(v: number): Uint8Array {
  const bytes: number[] = [];
  let x = v;
  do {
    bytes.unshift(x & 0xff);
    x = Math.floor(x / 256);
  } while (x > 0);
  if ((bytes[0] as number) & 0x80) bytes.unshift(0);
  return tlv(0x02, Uint8Array.from(bytes));
}

export const derOctets = (b: Uint8Array): Uint8Array => tlv(0x04, b);
export const derIa5 = (s: string): Uint8Array => tlv(0x16, new Uint8Array(Buffer.from(s, 'latin1')));
export const derEnumerated = (v: number): Uint8Array => tlv(0x0a, Uint8Array.of(v));
export const derSequence = (...items: Uint8Array[]): Uint8Array => tlv(0x30, Uint8Array.from(items.flatMap((i) => [...i])));

export function derOid(oid: string): Uint8Array {
  const [a, b, ...rest] = oid.split('.').map(Number) as [number, number, ...number[]];
  const out = [40 * a + b];
  for (const n of rest) {
    const chunk = [n & 0x7f];
    for (let x = Math.floor(n / 128); x > 0; x = Math.floor(x / 128)) chunk.unshift((x & 0x7f) | 0x80);
    out.push(...chunk);
  }
  return tlv(0x06, Uint8Array.from(out));
}
