import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import YAML from 'yaml';
import { parseEventLog } from '@keyhold/verifier/eventlog';
import { renderEvent, yamlString, yamlStringByYaml } from './eventlog-yaml.js';

// YAML 1.2 c-printable without line breaks (and without NEL, LS, PS, BOM: line breaks or markers
// for YAML 1.1 parsers): what a one-line scalar may contain.
const ONE_LINE_PRINTABLE = /^[\t\x20-\x7e\xa0-\ufefe\uff00-\ufffd\u{10000}-\u{10ffff}]*$/u;

const strings = fc.oneof(
  fc.string({ unit: 'binary', maxLength: 40 }),
  fc.string({ unit: fc.constantFrom('a', ' ', '\n', '\\', '"', '\0', '\x07', '\x0b', '\x1b', '\x01', '\x7f', '\t', '\r', 'u', '0', 'n', '\u0085', '\u2028', '\ufeff', '\ud800', '#', '-', ':'), maxLength: 16 }),
  fc.string({ unit: 'grapheme-ascii', maxLength: 60 }),
);

describe('yamlString', () => {
  it("gives yaml's own scalar output, on one line, YAML-printable, that parses back to the same string", () => {
    fc.assert(
      fc.property(strings, (s) => {
        const q = yamlString(s);
        expect(q).toBe(yamlStringByYaml(s));
        expect(q).toMatch(ONE_LINE_PRINTABLE);
        expect(YAML.parse(`k: ${q}\n`, { strict: true })).toEqual({ k: s });
        expect(YAML.parse(`- a: 1\n  b:\n    c: ${q}\n`, { strict: true })).toEqual([{ a: 1, b: { c: s } }]);
      }),
      { numRuns: 400 },
    );
  });

  it('writes the common grub string with its NUL as yaml does', () => {
    expect(yamlString('(hd0,gpt16)/grub/x86_64-efi/command.lst\0')).toBe('"(hd0,gpt16)/grub/x86_64-efi/command.lst\\0"');
    expect(yamlString('a \nb')).toBe('"a\\ \\nb"');
    expect(yamlString('\x7f\u0085')).toBe('"\\x7f\\N"');
  });
});

describe('renderEvent', () => {
  /** One crypto-agile event of `type` with `data`, behind a SHA-256 Spec ID header. */
  function oneEvent(type: number, data: Uint8Array): ReturnType<typeof parseEventLog>['events'][number] {
    const spec = Buffer.alloc(33);
    spec.write('Spec ID Event03\0', 0, 'latin1');
    spec.writeUInt32LE(1, 24);
    spec.writeUInt16LE(0x000b, 28);
    spec.writeUInt16LE(32, 30);
    const header = Buffer.alloc(32);
    header.writeUInt32LE(3, 4);
    header.writeUInt32LE(spec.length, 28);
    const ev = Buffer.alloc(12 + 2 + 32 + 4);
    ev.writeUInt32LE(4, 0);
    ev.writeUInt32LE(type >>> 0, 4);
    ev.writeUInt32LE(1, 8);
    ev.writeUInt16LE(0x000b, 12);
    ev.writeUInt32LE(data.byteLength, 46);
    return parseEventLog(Buffer.concat([header, spec, ev, data])).events[1]!;
  }

  const types = [0x1, 0x3, 0x5, 0x7, 0xd, 0x80000001, 0x80000002, 0x80000003, 0x80000006, 0x80000007, 0x80000008, 0x8000000a, 0x8000000c, 0x80000010, 0x800000e0, 0x12345];

  it('renders any event data of any type as a YAML list item with the header keys, never throwing', () => {
    fc.assert(
      fc.property(fc.constantFrom(...types), fc.uint8Array({ maxLength: 300 }), (type, data) => {
        const doc = YAML.parse(renderEvent(oneEvent(type, data)), { strict: true, uniqueKeys: true }) as Record<string, unknown>[];
        expect(doc).toHaveLength(1);
        expect(doc[0]).toMatchObject({ EventNum: 1, PCRIndex: 4, DigestCount: 1, EventSize: data.byteLength });
      }),
      { numRuns: 300 },
    );
  });

  it('renders UEFI variables with any name and value as YAML (names are quoted as needed)', () => {
    fc.assert(
      fc.property(
        fc.constantFrom(0x80000001, 0x80000002, 0x800000e0),
        fc.constantFrom('SecureBoot', 'PK', 'KEK', 'db', 'dbx', 'BootOrder', 'Boot0001', 'MokListTrusted', 'SbatLevel', 'Shim', 'x: y', '"\\'),
        fc.uint8Array({ maxLength: 200 }),
        (type, name, value) => {
          const head = Buffer.alloc(32);
          head.writeBigUInt64LE(BigInt(name.length), 16);
          head.writeBigUInt64LE(BigInt(value.byteLength), 24);
          const data = Buffer.concat([head, Buffer.from(name, 'utf16le'), value]);
          const doc = YAML.parse(renderEvent(oneEvent(type, data)), { strict: true, uniqueKeys: true }) as { Event: { UnicodeName: string } }[];
          expect(doc[0]?.Event.UnicodeName).toBe(name);
        },
      ),
      { numRuns: 300 },
    );
  });
});
