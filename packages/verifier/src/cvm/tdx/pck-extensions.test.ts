import { describe, expect, it } from 'vitest';
import { CvmError } from '../errors.js';
import { decodePckPlatform } from './pck-extensions.js';

// A minimal DER writer for the test (independent of the decoder under test).
const tlv = (tag: number, c: number[]): number[] => [tag, ...(c.length < 128 ? [c.length] : c.length < 256 ? [0x81, c.length] : [0x82, c.length >> 8, c.length & 0xff]), ...c];
const seq = (...items: number[][]): number[] => tlv(0x30, items.flat());
const int = (v: number): number[] => tlv(0x02, v < 128 ? [v] : [0, v]);
const oct = (b: number[]): number[] => tlv(0x04, b);
const oid = (suffix: string): number[] => {
  const arcs = `1.2.840.113741.1.13.1${suffix}`.split('.').map(Number);
  const out = [40 * arcs[0]! + arcs[1]!];
  for (const n of arcs.slice(2)) {
    const chunk = [n & 0x7f];
    for (let x = n >> 7; x > 0; x >>= 7) chunk.unshift((x & 0x7f) | 0x80);
    out.push(...chunk);
  }
  return tlv(0x06, out);
};

function extension(o: { dropFmspc?: boolean; dupPceId?: boolean; dropTcb?: boolean; badComp?: boolean } = {}): Uint8Array {
  const tcb = seq(
    ...Array.from({ length: 16 }, (_, i) => seq(oid(`.2.${i + 1}`), o.badComp === true && i === 3 ? oct([1]) : int(i))),
    seq(oid('.2.17'), int(13)),
    seq(oid('.2.18'), oct(new Array(16).fill(1))),
  );
  return Uint8Array.from(
    seq(
      seq(oid('.1'), oct(new Array(16).fill(9))),
      ...(o.dropTcb === true ? [] : [seq(oid('.2'), tcb)]),
      seq(oid('.3'), oct([0, 0])),
      ...(o.dupPceId === true ? [seq(oid('.3'), oct([0, 1]))] : []),
      ...(o.dropFmspc === true ? [] : [seq(oid('.4'), oct([0x00, 0x80, 0x6f, 0x05, 0x00, 0x00]))]),
      seq(oid('.5'), tlv(0x0a, [1])),
    ),
  );
}

const code = (b: Uint8Array): string => {
  try {
    decodePckPlatform(b);
  } catch (err) {
    if (err instanceof CvmError) return err.code;
    throw err;
  }
  return 'no error';
};

describe('decodePckPlatform', () => {
  it('reads FMSPC, PCE id, PCESVN and the 16 SGX TCB components', () => {
    const p = decodePckPlatform(extension());
    expect(p.fmspc).toBe('00806F050000');
    expect(p.pceId).toBe('0000');
    expect(p.pceSvn).toBe(13);
    expect(p.sgxTcbComponents).toEqual(Array.from({ length: 16 }, (_, i) => i));
    expect(p.sgxType).toBe(1);
  });

  it('refuses malformed, truncated, duplicated or incomplete extensions', () => {
    const ok = extension();
    expect(code(ok.subarray(0, ok.length - 1))).toBe('TDX_PCK_UNTRUSTED');
    expect(code(Uint8Array.from([...ok, 0]))).toBe('TDX_PCK_UNTRUSTED');
    expect(code(Uint8Array.of(0x31, ...ok.subarray(1)))).toBe('TDX_PCK_UNTRUSTED');
    expect(code(extension({ dupPceId: true }))).toBe('TDX_PCK_UNTRUSTED');
    expect(code(extension({ dropFmspc: true }))).toBe('TDX_PCK_UNTRUSTED');
    expect(code(extension({ dropTcb: true }))).toBe('TDX_PCK_UNTRUSTED');
    expect(code(extension({ badComp: true }))).toBe('TDX_PCK_UNTRUSTED');
  });
});
