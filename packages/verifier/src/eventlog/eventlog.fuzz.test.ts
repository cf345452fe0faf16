import { createHash } from 'node:crypto';
import fc from 'fast-check';
import { createMeasuredBootReferenceState } from '../measured-boot/create.js';
import { EVENTLOG_BANKS } from './algorithms.js';
import { decodeUnverifiedEvents } from './decode.js';
import { EventLogError } from './errors.js';
import {
  decodeUnverifiedFirmwareBlob,
  decodeUnverifiedGptEvent,
  decodeUnverifiedImageLoad,
  decodeUnverifiedLoadOption,
  decodeUnverifiedSignatureLists,
  decodeUnverifiedStartupLocality,
  decodeUnverifiedUefiVariable,
} from './event-data.js';
import { forEachDigestHex, parseEventLog } from './parse.js';
import { replayEventLog } from './replay.js';
import { verifyEventLogAgainstQuote } from './verify.js';

/**
 * Fuzz property (issue 12) for TCG event logs: for any input, parsing, replay, decoding of every
 * event (UEFI variables, signature lists, load options, image loads, GPT, firmware blobs), the
 * reference-state builder and verification against the replayed PCRs throw only EventLogError,
 * and a log that parses replays and verifies against its own replay. Seeds are crafted logs with
 * every structure the decoders know (crypto-agile SHA-1+SHA-256, and SHA-1 format), then mutated.
 */

const le16 = (n: number): Buffer => Buffer.from([n & 0xff, n >> 8]);
const le32 = (n: number): Buffer => {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(n >>> 0);
  return b;
};
const le64 = (n: number): Buffer => {
  const b = Buffer.alloc(8);
  b.writeBigUInt64LE(BigInt(n));
  return b;
};
const guid = (seed: number): Buffer => Buffer.alloc(16, seed);
const ucs2 = (s: string): Buffer => Buffer.from(s, 'utf16le');

function variable(name: string, data: Uint8Array, vendor = guid(0x61)): Buffer {
  return Buffer.concat([vendor, le64(name.length), le64(data.byteLength), ucs2(name), data]);
}

const signatureList = Buffer.concat([guid(0xa1), le32(28 + 2 * 48), le32(0), le32(48), guid(0x11), Buffer.alloc(32, 1), guid(0x11), Buffer.alloc(32, 2)]);
const loadOption = Buffer.concat([le32(1), le16(4), ucs2('Linux\0'), Buffer.from([0x7f, 0xff, 4, 0])]);
const devicePath = Buffer.concat([Buffer.from([4, 4, 14, 0]), ucs2('\\EFI\\A\0'.slice(0, 5)), Buffer.from([0x7f, 0xff, 4, 0])]);
const imageLoad = Buffer.concat([le64(0x1000), le64(4096), le64(0), le64(devicePath.length), devicePath]);
const gpt = Buffer.concat([Buffer.from('EFI PART'), le32(0x10000), le32(92), le32(0), le32(0), le64(1), le64(99), le64(34), le64(80), guid(0x33), le64(2), le32(128), le32(128), le32(0), le64(1), guid(0x44), guid(0x55), le64(34), le64(80), le64(0), ucs2('root').subarray(0, 8), Buffer.alloc(64)]);
const blob2 = Buffer.concat([Buffer.from([4]), Buffer.from('fwvl'), le64(0xff000000), le64(0x10000)]);
const locality = Buffer.concat([Buffer.from('StartupLocality\0', 'latin1'), Buffer.from([3])]);

const EVENTS: { pcr: number; type: number; data: Uint8Array }[] = [
  { pcr: 0, type: 0x3, data: locality },
  { pcr: 0, type: 0x8, data: ucs2('v1.0\0') },
  { pcr: 0, type: 0x8000000a, data: blob2 },
  { pcr: 7, type: 0x80000001, data: variable('SecureBoot', Buffer.from([1]), Buffer.from('61dfe48bca93d211aa0d00e098032b8c', 'hex')) },
  { pcr: 7, type: 0x80000001, data: variable('db', signatureList) },
  { pcr: 1, type: 0x80000002, data: variable('BootOrder', Buffer.from([1, 0])) },
  { pcr: 1, type: 0x80000002, data: variable('Boot0001', loadOption) },
  { pcr: 7, type: 0x4, data: Buffer.alloc(4) },
  { pcr: 7, type: 0x800000e0, data: variable('db', Buffer.concat([guid(0x11), Buffer.from([0x30, 0x03, 2, 1, 1])])) },
  { pcr: 5, type: 0x80000006, data: gpt },
  { pcr: 4, type: 0x80000003, data: imageLoad },
  { pcr: 8, type: 0xd, data: Buffer.from('grub_cmd: linux /vmlinuz root=/dev/sda1\0') },
  { pcr: 8, type: 0xd, data: Buffer.from('kernel_cmdline: /vmlinuz root=/dev/sda1\0') },
  { pcr: 4, type: 0x80000007, data: Buffer.from('Exit Boot Services Invocation') },
];

function agileLog(): Buffer {
  const algs = [
    [0x0004, 20],
    [0x000b, 32],
  ] as const;
  const spec = Buffer.concat([Buffer.from('Spec ID Event03\0', 'latin1'), le32(0), Buffer.from([0, 2, 0, 2]), le32(algs.length), ...algs.map(([id, n]) => Buffer.concat([le16(id), le16(n)])), Buffer.from([0])]);
  const parts: Buffer[] = [le32(0), le32(3), Buffer.alloc(20), le32(spec.length), spec];
  for (const ev of EVENTS) {
    parts.push(le32(ev.pcr), le32(ev.type), le32(algs.length));
    for (const [id, n] of algs) parts.push(le16(id), createHash(n === 20 ? 'sha1' : 'sha256').update(ev.data).digest());
    parts.push(le32(ev.data.byteLength), Buffer.from(ev.data));
  }
  return Buffer.concat(parts);
}

function legacyLog(): Buffer {
  return Buffer.concat(EVENTS.slice(1).map((ev) => Buffer.concat([le32(ev.pcr), le32(ev.type), createHash('sha1').update(ev.data).digest(), le32(ev.data.byteLength), Buffer.from(ev.data)])));
}

const seeds = [agileLog(), legacyLog()];

type Edit = { kind: 'flip' | 'set' | 'big' | 'cut' | 'insert'; at: number; value: number; bytes: Uint8Array };
const edit: fc.Arbitrary<Edit> = fc.record({ kind: fc.constantFrom('flip', 'set', 'big', 'cut', 'insert'), at: fc.nat(), value: fc.nat(255), bytes: fc.uint8Array({ maxLength: 12 }) });

/** Flipped bits, overwritten bytes, huge length fields, truncations and insertions of a seed. */
function apply(seed: Uint8Array, edits: readonly Edit[]): Uint8Array {
  let b = Buffer.from(seed);
  for (const e of edits) {
    if (b.length === 0) break;
    const at = e.at % b.length;
    if (e.kind === 'flip') b[at] = (b[at] as number) ^ (1 << (e.value & 7));
    else if (e.kind === 'set') b[at] = e.value;
    else if (e.kind === 'big') b.fill(e.value & 1 ? 0xff : 0x7f, at, Math.min(b.length, at + 4));
    else if (e.kind === 'cut') b = b.subarray(0, at);
    else b = Buffer.concat([b.subarray(0, at), e.bytes, b.subarray(at)]);
  }
  return b;
}

const inputs = fc.oneof(
  { weight: 6, arbitrary: fc.tuple(fc.constantFrom(...seeds), fc.array(edit, { minLength: 1, maxLength: 6 })).map(([s, es]) => apply(s, es)) },
  fc.uint8Array({ maxLength: 400 }),
);

function typedOnly(fn: () => void): void {
  try {
    fn();
  } catch (err) {
    if (!(err instanceof EventLogError)) throw err;
  }
}

/** Everything the verifier and `keyhold eventlog` do with a log. */
function exercise(bytes: Uint8Array): void {
  let log: ReturnType<typeof parseEventLog>;
  try {
    log = parseEventLog(bytes, { maxEvents: 10_000 });
  } catch (err) {
    if (err instanceof EventLogError) return;
    throw err;
  }
  const replays = replayEventLog(log);
  typedOnly(() => void decodeUnverifiedEvents(log));
  for (const ev of log.events) {
    forEachDigestHex(ev, () => undefined);
    for (const decode of [decodeUnverifiedUefiVariable, decodeUnverifiedImageLoad, decodeUnverifiedGptEvent, decodeUnverifiedLoadOption, decodeUnverifiedSignatureLists, decodeUnverifiedStartupLocality]) {
      typedOnly(() => void decode(ev.data));
    }
    typedOnly(() => void decodeUnverifiedFirmwareBlob(ev.data, true));
  }
  typedOnly(() => void createMeasuredBootReferenceState(log));
  for (const bank of EVENTLOG_BANKS) {
    const r = replays.get(bank);
    if (r === undefined || !r.ok) continue;
    // A log always verifies against its own replay (PCRs it extends, quoted as replayed).
    const verified = verifyEventLogAgainstQuote(log, { bank, values: r.pcrs }, { allowSha1: true });
    if (verified.bank !== bank) throw new Error('verified the wrong bank');
  }
}

/** What `pnpm fuzz` (scripts/fuzz.ts) runs for as long as asked, and vitest 200 cases of. */
export type FuzzProperty = { readonly name: string; readonly property: fc.IRawProperty<any, boolean> };

export const properties: readonly FuzzProperty[] = [
  {
    name: 'verifier: event log parse, replay, decode and verify throw only EventLogError',
    property: fc.property(inputs, exercise),
  },
];

if (process.env['VITEST'] !== undefined) {
  const { describe, expect, it } = await import('vitest');
  describe('fuzz: event log', () => {
    it('the seeds parse and replay every bank', () => {
      for (const seed of seeds) {
        const log = parseEventLog(seed);
        expect([...replayEventLog(log).values()].every((r) => r.ok)).toBe(true);
        exercise(seed);
      }
    });
    for (const p of properties) it(p.name, () => fc.assert(p.property, { numRuns: 200 }));
  });
}
