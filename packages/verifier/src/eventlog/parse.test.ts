import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { EventLogError } from './errors.js';
import { parseEventLog } from './parse.js';
import { replayEventLog } from './replay.js';

// Fixtures: ../shared/corpus/eventlogs (google/go-tpm-tools internal/test/eventlogs, see its README.md).
const repoRoot = fileURLToPath(new URL('../../../../', import.meta.url));
const corpus = path.resolve(repoRoot, '../shared/corpus/eventlogs');
const haveCorpus = existsSync(corpus);
if (!haveCorpus) console.warn(`skipping event log corpus tests: ${corpus} is absent`);
const logs = haveCorpus ? readdirSync(corpus).filter((f) => f.endsWith('.bin')).sort() : [];

function codeOf(fn: () => unknown): string {
  try {
    fn();
    return 'accepted';
  } catch (err) {
    if (err instanceof EventLogError) return err.code;
    throw err;
  }
}

function replayHex(bytes: Uint8Array): Record<string, Record<string, string>> {
  const out: Record<string, Record<string, string>> = {};
  for (const [bank, r] of replayEventLog(parseEventLog(bytes))) {
    if (!r.ok) throw r.error;
    out[bank] = Object.fromEntries([...r.pcrs].sort((a, b) => a[0] - b[0]).map(([i, v]) => [String(i), Buffer.from(v).toString('hex')]));
  }
  return out;
}

describe.skipIf(!haveCorpus)('parseEventLog + replayEventLog on the corpus', () => {
  it('has the 14 logs', () => expect(logs).toHaveLength(14));
  for (const file of logs) {
    it(`${file}: replays to the TCG-spec PCRs of .expected.json`, () => {
      const expected = JSON.parse(readFileSync(path.join(corpus, file.replace(/\.bin$/, '.expected.json')), 'utf8'));
      const bytes = readFileSync(path.join(corpus, file));
      const log = parseEventLog(bytes);
      expect(log.events).toHaveLength(expected.event_count);
      expect(log.format).toBe(expected.log_format.startsWith('SHA1') ? 'sha1' : 'crypto-agile');
      expect(replayHex(bytes)).toEqual(expected.pcrs_tcg_spec ?? expected.pcrs);
      if (expected.startup_locality !== undefined) {
        const r = replayEventLog(log).get(log.banks[0]!);
        expect(r?.ok && r.startupLocality).toBe(expected.startup_locality);
      }
    });
  }

  it('differs from tpm2-tools 5.4 exactly where it ignores StartupLocality / extends EV_NO_ACTION', () => {
    const expected = JSON.parse(readFileSync(path.join(corpus, 'glinux-alex.expected.json'), 'utf8'));
    const got = replayHex(readFileSync(path.join(corpus, 'glinux-alex.bin')));
    expect(got.sha256?.['0']).not.toBe(expected.pcrs.sha256['0']);
    expect(got.sha256?.['1']).toBe(expected.pcrs.sha256['1']);
  });
});

/** Builds a crypto-agile log from events; digests are [algId, bytes][]. */
function agileLog(algs: [number, number][], events: { pcr: number; type: number; digests: [number, Uint8Array][]; data: Uint8Array }[]): Buffer {
  const spec = Buffer.alloc(28 + algs.length * 4 + 1);
  spec.write('Spec ID Event03\0', 0, 'latin1');
  spec.writeUInt8(2, 21);
  spec.writeUInt8(2, 23);
  spec.writeUInt32LE(algs.length, 24);
  algs.forEach(([id, size], i) => {
    spec.writeUInt16LE(id, 28 + i * 4);
    spec.writeUInt16LE(size, 30 + i * 4);
  });
  const header = Buffer.alloc(32);
  header.writeUInt32LE(3, 4);
  header.writeUInt32LE(spec.length, 28);
  const parts: Buffer[] = [header, spec];
  for (const ev of events) {
    const h = Buffer.alloc(12);
    h.writeUInt32LE(ev.pcr, 0);
    h.writeUInt32LE(ev.type, 4);
    h.writeUInt32LE(ev.digests.length, 8);
    parts.push(h);
    for (const [id, d] of ev.digests) {
      const a = Buffer.alloc(2);
      a.writeUInt16LE(id);
      parts.push(a, Buffer.from(d));
    }
    const sz = Buffer.alloc(4);
    sz.writeUInt32LE(ev.data.byteLength);
    parts.push(sz, Buffer.from(ev.data));
  }
  return Buffer.concat(parts);
}

/** Builds a legacy (SHA-1 format, TCG_PCR_EVENT) log: pcr, type, 20-byte digest, data. */
function legacyLog(events: { pcr: number; type: number; digest?: Uint8Array; data: Uint8Array }[]): Buffer {
  const parts: Buffer[] = [];
  for (const ev of events) {
    const h = Buffer.alloc(32);
    h.writeUInt32LE(ev.pcr >>> 0, 0);
    h.writeUInt32LE(ev.type >>> 0, 4);
    if (ev.digest !== undefined) h.set(ev.digest, 8);
    h.writeUInt32LE(ev.data.byteLength, 28);
    parts.push(h, Buffer.from(ev.data));
  }
  return Buffer.concat(parts);
}

const SHA1 = 0x0004;
const SHA256 = 0x000b;
const z20 = new Uint8Array(20).fill(1);
const z32 = new Uint8Array(32).fill(2);

describe('hostile logs fail with typed errors', () => {
  it('rejects an empty log and a sub-header log', () => {
    expect(codeOf(() => parseEventLog(new Uint8Array(0)))).toBe('EVENTLOG_TRUNCATED');
    expect(codeOf(() => parseEventLog(new Uint8Array(31)))).toBe('EVENTLOG_TRUNCATED');
  });

  it('accepts a minimal well-formed log and replays it', () => {
    const log = parseEventLog(agileLog([[SHA1, 20], [SHA256, 32]], [{ pcr: 4, type: 0x80000003, digests: [[SHA1, z20], [SHA256, z32]], data: new Uint8Array(0) }]));
    expect(log.banks).toEqual(['sha1', 'sha256']);
    expect(log.events).toHaveLength(2);
  });

  it('rejects an event size larger than the bytes left (no allocation)', () => {
    const b = agileLog([[SHA256, 32]], [{ pcr: 0, type: 4, digests: [[SHA256, z32]], data: new Uint8Array(4) }]);
    b.writeUInt32LE(0xffffffff, b.length - 8);
    expect(codeOf(() => parseEventLog(b))).toBe('EVENTLOG_LENGTH_EXCEEDED');
  });

  it('rejects a digest count above the Spec ID algorithm count', () => {
    const b = agileLog([[SHA256, 32]], [{ pcr: 0, type: 4, digests: [[SHA256, z32]], data: new Uint8Array(4) }]);
    const off = b.length - 4 - 4 - 32 - 2 - 4;
    b.writeUInt32LE(0x7fffffff, off);
    expect(codeOf(() => parseEventLog(b))).toBe('EVENTLOG_LENGTH_EXCEEDED');
  });

  it('rejects an algorithm absent from the Spec ID header, and a repeated one', () => {
    expect(codeOf(() => parseEventLog(agileLog([[SHA256, 32]], [{ pcr: 0, type: 4, digests: [[SHA1, z20]], data: new Uint8Array(0) }])))).toBe('EVENTLOG_MALFORMED');
    expect(codeOf(() => parseEventLog(agileLog([[SHA256, 32], [SHA1, 20]], [{ pcr: 0, type: 4, digests: [[SHA256, z32], [SHA256, z32]], data: new Uint8Array(0) }])))).toBe('EVENTLOG_MALFORMED');
  });

  it('rejects a Spec ID header with a wrong size for a known algorithm or an absurd algorithm count', () => {
    expect(codeOf(() => parseEventLog(agileLog([[SHA256, 20]], [])))).toBe('EVENTLOG_MALFORMED');
    const b = agileLog([[SHA256, 32]], []);
    b.writeUInt32LE(0xffffffff, 32 + 24);
    expect(codeOf(() => parseEventLog(b))).toBe('EVENTLOG_MALFORMED');
  });

  it('rejects a PCR index above 23', () => {
    expect(codeOf(() => parseEventLog(agileLog([[SHA256, 32]], [{ pcr: 24, type: 4, digests: [[SHA256, z32]], data: new Uint8Array(0) }])))).toBe('EVENTLOG_MALFORMED');
  });

  it('parses a SHA-1-format log ending with an EV_NO_ACTION event on PCR 0xFFFFFFFF and never extends it', () => {
    // Windows SHA-1 logs end this way; EV_NO_ACTION is never extended, whatever its index (PFP 10.4.5).
    const crtm = { pcr: 0, type: 8, digest: z20, data: Buffer.from('v1\0', 'latin1') };
    const sep = { pcr: 7, type: 4, digest: new Uint8Array(20).fill(7), data: new Uint8Array(4) };
    const tail = { pcr: 0xffffffff, type: 3, digest: new Uint8Array(20).fill(9), data: Buffer.from('WBCL trailer', 'latin1') };
    const withTail = parseEventLog(legacyLog([crtm, sep, tail]));
    expect(withTail.format).toBe('sha1');
    expect(withTail.events).toHaveLength(3);
    expect(withTail.events[2]).toMatchObject({ pcr: 0xffffffff, type: 3 });
    const withoutTail = replayEventLog(parseEventLog(legacyLog([crtm, sep]))).get('sha1');
    const replayed = replayEventLog(withTail).get('sha1');
    expect(replayed?.ok).toBe(true);
    expect(withoutTail?.ok).toBe(true);
    if (replayed?.ok && withoutTail?.ok) {
      expect([...replayed.pcrs.keys()].sort()).toEqual([0, 7]);
      expect(replayed.pcrs).toEqual(withoutTail.pcrs);
    }
    // Crypto-agile logs too: EV_NO_ACTION may name any index.
    const agile = parseEventLog(agileLog([[SHA256, 32]], [{ pcr: 0xffffffff, type: 3, digests: [[SHA256, z32]], data: new Uint8Array(3) }]));
    expect(replayEventLog(agile).get('sha256')).toMatchObject({ ok: true, pcrs: new Map() });
  });

  it('still rejects an extended event on PCR 0xFFFFFFFF or 24 in a SHA-1-format log', () => {
    const crtm = { pcr: 0, type: 8, digest: z20, data: new Uint8Array(2) };
    expect(codeOf(() => parseEventLog(legacyLog([crtm, { pcr: 0xffffffff, type: 4, data: new Uint8Array(4) }])))).toBe('EVENTLOG_MALFORMED');
    expect(codeOf(() => parseEventLog(legacyLog([crtm, { pcr: 24, type: 0x80000003, data: new Uint8Array(0) }])))).toBe('EVENTLOG_MALFORMED');
    expect(codeOf(() => parseEventLog(legacyLog([{ pcr: 0xffffffff, type: 5, data: new Uint8Array(0) }])))).toBe('EVENTLOG_MALFORMED');
  });

  it('bounds the number of events', () => {
    const ev = { pcr: 0, type: 4, digests: [[SHA256, z32]] as [number, Uint8Array][], data: new Uint8Array(0) };
    expect(codeOf(() => parseEventLog(agileLog([[SHA256, 32]], [ev, ev, ev]), { maxEvents: 3 }))).toBe('EVENTLOG_LENGTH_EXCEEDED');
  });

  it('fails only the bank an event lacks a digest for', () => {
    const log = parseEventLog(agileLog([[SHA1, 20], [SHA256, 32]], [{ pcr: 4, type: 0x80000003, digests: [[SHA256, z32]], data: new Uint8Array(0) }]));
    const r = replayEventLog(log);
    expect(r.get('sha256')?.ok).toBe(true);
    const sha1 = r.get('sha1');
    expect(sha1?.ok === false && sha1.error.code).toBe('EVENTLOG_MISSING_DIGEST');
  });

  it('does not extend EV_NO_ACTION and applies StartupLocality to PCR0 only before PCR0 is extended', () => {
    const loc = Buffer.concat([Buffer.from('StartupLocality\0', 'latin1'), Buffer.from([3])]);
    const noAction = { pcr: 0, type: 3, digests: [[SHA256, new Uint8Array(32)]] as [number, Uint8Array][], data: loc };
    const extend = { pcr: 0, type: 8, digests: [[SHA256, z32]] as [number, Uint8Array][], data: new Uint8Array(2) };
    const ok = replayEventLog(parseEventLog(agileLog([[SHA256, 32]], [noAction, extend]))).get('sha256');
    expect(ok?.ok && ok.startupLocality).toBe(3);
    const late = replayEventLog(parseEventLog(agileLog([[SHA256, 32]], [extend, noAction]))).get('sha256');
    expect(late?.ok === false && late.error.code).toBe('EVENTLOG_MALFORMED');
    const onlyNoAction = replayEventLog(parseEventLog(agileLog([[SHA256, 32]], [{ ...noAction, data: new Uint8Array(5) }]))).get('sha256');
    expect(onlyNoAction?.ok && onlyNoAction.pcrs.size).toBe(0);
  });
});

describe.skipIf(!haveCorpus)('mutated corpus logs (fast-check)', () => {
  const samples = logs.map((f) => readFileSync(path.join(corpus, f)));
  const parseAndReplay = (b: Uint8Array): string => codeOf(() => replayEventLog(parseEventLog(b)));
  const allowed = new Set(['accepted', 'EVENTLOG_TRUNCATED', 'EVENTLOG_LENGTH_EXCEEDED', 'EVENTLOG_MALFORMED', 'EVENTLOG_UNSUPPORTED_ALGORITHM']);

  it('truncated logs parse to a prefix or fail with a typed error', () => {
    fc.assert(
      fc.property(fc.nat(samples.length - 1), fc.double({ min: 0, max: 1, noNaN: true }), (i, frac) => {
        const s = samples[i] as Buffer;
        const cut = s.subarray(0, Math.floor(s.length * frac));
        expect(allowed.has(parseAndReplay(cut))).toBe(true);
      }),
      { numRuns: 300 },
    );
  });

  it('bit-flipped logs never crash or hang', () => {
    fc.assert(
      fc.property(fc.nat(samples.length - 1), fc.array(fc.tuple(fc.nat(), fc.nat(7)), { minLength: 1, maxLength: 8 }), (i, flips) => {
        const s = Buffer.from(samples[i] as Buffer);
        for (const [pos, bit] of flips) s[pos % s.length] = (s[pos % s.length] as number) ^ (1 << bit);
        expect(allowed.has(parseAndReplay(s))).toBe(true);
      }),
      { numRuns: 300 },
    );
  });

  it('oversized length fields in any event fail with a typed error', () => {
    fc.assert(
      fc.property(fc.nat(samples.length - 1), fc.nat(), fc.integer({ min: 0x10000, max: 0xffffffff }), (i, pick, size) => {
        const s = Buffer.from(samples[i] as Buffer);
        const log = parseEventLog(s);
        const ev = log.events[pick % log.events.length]!;
        // The event size field sits just before the data in both formats.
        const sizeOffset = ev.data.byteOffset - s.byteOffset - 4;
        s.writeUInt32LE(size, sizeOffset);
        const code = parseAndReplay(s);
        expect(['EVENTLOG_LENGTH_EXCEEDED', 'EVENTLOG_TRUNCATED', 'EVENTLOG_MALFORMED']).toContain(code);
      }),
      { numRuns: 300 },
    );
  });
});
