import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { EventLogError } from '../eventlog/errors.js';
import { parseEventLog, type EventLog } from '../eventlog/parse.js';
import { replayEventLog } from '../eventlog/replay.js';
import { verifyEventLogAgainstQuote, type VerifiedEventLog } from '../eventlog/verify.js';
import { appraiseMeasuredBoot } from './appraise.js';
import { createMeasuredBootReferenceState } from './create.js';
import { parseMeasuredBootReferenceState, type MeasuredBootReferenceState } from './reference-state.js';

// Fixtures: ../shared/corpus/eventlogs (google/go-tpm-tools internal/test/eventlogs).
const repoRoot = fileURLToPath(new URL('../../../../', import.meta.url));
const corpus = path.resolve(repoRoot, '../shared/corpus/eventlogs');
const haveCorpus = existsSync(corpus);
if (!haveCorpus) console.warn(`skipping measured-boot appraisal tests: ${corpus} is absent`);
const load = (name: string): Buffer => readFileSync(path.join(corpus, name));

/** Simulates a TPM that executed exactly this log: its quote holds the replayed sha256 PCRs. */
function verifyAsQuoted(log: EventLog, pcrs?: number[]): VerifiedEventLog {
  const r = replayEventLog(log, { banks: ['sha256'] }).get('sha256');
  if (r?.ok !== true) throw new Error('replay failed');
  const values = new Map([...r.pcrs].filter(([i]) => pcrs === undefined || pcrs.includes(i)));
  for (const i of pcrs ?? []) if (!values.has(i)) values.set(i, new Uint8Array(32));
  return verifyEventLogAgainstQuote(log, { bank: 'sha256', values });
}

/** Appends a crypto-agile event (digests for every bank of the header) to a log. */
function appendEvent(bytes: Buffer, pcr: number, type: number, data: Buffer, measured: Buffer = data): Buffer {
  const banks: [number, string][] = parseEventLog(bytes).banks.map((b) => [{ sha1: 4, sha256: 11, sha384: 12, sha512: 13 }[b], b]);
  const head = Buffer.alloc(12);
  head.writeUInt32LE(pcr, 0);
  head.writeUInt32LE(type, 4);
  head.writeUInt32LE(banks.length, 8);
  const parts = [bytes, head];
  for (const [id, b] of banks) {
    const a = Buffer.alloc(2);
    a.writeUInt16LE(id);
    parts.push(a, createHash(b).update(measured).digest());
  }
  const sz = Buffer.alloc(4);
  sz.writeUInt32LE(data.length);
  parts.push(sz, data);
  return Buffer.concat(parts);
}

const good = 'ubuntu-2404-amd-sevsnp.bin';

describe.skipIf(!haveCorpus)('appraiseMeasuredBoot', () => {
  const agile = haveCorpus ? readdirSync(corpus).filter((f) => f.endsWith('.bin') && f !== 'debian-10.bin' && f !== 'gdc-host.bin') : [];
  for (const file of agile) {
    it(`${file}: a reference state created from the log accepts it`, () => {
      const log = parseEventLog(load(file));
      const state = parseMeasuredBootReferenceState(JSON.parse(JSON.stringify(createMeasuredBootReferenceState(log, { bank: 'sha256', pinPcrs: [0, 2] }))));
      const result = appraiseMeasuredBoot(verifyAsQuoted(log), state);
      expect(result.failures).toEqual([]);
      expect(result.ok).toBe(true);
    });
  }

  const base = (): { log: EventLog; state: MeasuredBootReferenceState } => {
    const log = parseEventLog(load(good));
    return { log, state: createMeasuredBootReferenceState(log, { bank: 'sha256', pinPcrs: [0] }) };
  };

  it('fails when one boot application digest differs from the reference', () => {
    const { log, state } = base();
    const apps = state.bootApplications?.sha256 ?? [];
    const r = appraiseMeasuredBoot(verifyAsQuoted(log), { ...state, bootApplications: { sha256: apps.slice(1) } });
    expect(r.ok).toBe(false);
    expect(r.failures[0]).toMatchObject({ check: 'bootApplications', category: 'executables' });
    expect(r.failures[0]?.eventIndex).toBeTypeOf('number');
  });

  it('fails when the kernel command line matches no pattern', () => {
    const { log, state } = base();
    const r = appraiseMeasuredBoot(verifyAsQuoted(log), { ...state, kernelCmdline: ['.* lockdown=integrity'] });
    expect(r.failures.map((f) => f.check)).toEqual(['kernelCmdline']);
  });

  it('fails on Secure Boot state, PK/KEK/db content, missing dbx entries and PCR values', () => {
    const { log, state } = base();
    const v = verifyAsQuoted(log);
    expect(appraiseMeasuredBoot(v, { ...state, secureBoot: !state.secureBoot }).failures.map((f) => f.check)).toEqual(['secureBoot']);
    expect(appraiseMeasuredBoot(v, { ...state, db: (state.db ?? []).slice(1) }).failures.map((f) => f.check)).toEqual(['db']);
    expect(appraiseMeasuredBoot(v, { ...state, kek: [] }).failures.map((f) => f.check)).toEqual(['kek']);
    expect(appraiseMeasuredBoot(v, { ...state, dbxRequired: [...(state.dbxRequired ?? []), 'ab'.repeat(32)] }).failures.map((f) => f.check)).toEqual(['dbxRequired']);
    expect(appraiseMeasuredBoot(v, { ...state, pcrs: { sha256: { '0': ['00'.repeat(32)] } } }).failures.map((f) => f.check)).toEqual(['pcrs']);
    expect(appraiseMeasuredBoot(v, { ...state, pcrs: { sha384: { '0': ['00'.repeat(48)] } } }).failures.map((f) => f.check)).toEqual(['pcrs']);
  });

  it('fails every check whose PCR was not quoted', () => {
    const { log, state } = base();
    const r = appraiseMeasuredBoot(verifyAsQuoted(log, [0]), state);
    expect(new Set(r.failures.map((f) => f.check))).toEqual(new Set(['secureBoot', 'bootApplications', 'kernelCmdline']));
  });

  it('a boot application appended under a harmless-looking type is still appraised as code', () => {
    // event-log-disclosure.md: the attacker extends PCR4 with its own loader and labels it EV_EFI_ACTION.
    const { state } = base();
    const forged = parseEventLog(appendEvent(load(good), 4, 0x80000007, Buffer.from('Calling EFI Application from Boot Option'), Buffer.from('evil loader')));
    const r = appraiseMeasuredBoot(verifyAsQuoted(forged), state);
    expect(r.ok).toBe(false);
    expect(r.failures[0]?.check).toBe('bootApplications');
  });

  it('a SecureBoot=1 variable appended after the PCR7 separator does not count', () => {
    const log = parseEventLog(load('ubuntu-2104-no-secure-boot.bin'));
    const state = createMeasuredBootReferenceState(log, { bank: 'sha256' });
    expect(state.secureBoot).toBe(false);
    const name = Buffer.from('SecureBoot', 'utf16le');
    const v = Buffer.alloc(32 + name.length + 1);
    Buffer.from('61dfe48bca93d211aa0d00e098032b8c', 'hex').copy(v, 0);
    v.writeBigUInt64LE(10n, 16);
    v.writeBigUInt64LE(1n, 24);
    name.copy(v, 32);
    v[v.length - 1] = 1;
    const forged = parseEventLog(appendEvent(load('ubuntu-2104-no-secure-boot.bin'), 7, 0x80000001, v));
    const r = appraiseMeasuredBoot(verifyAsQuoted(forged), { secureBoot: true, version: 1 });
    expect(r.failures.map((f) => f.check)).toEqual(['secureBoot']);
  });

  it('a SecureBoot variable relabelled to another type is not found', () => {
    const bytes = Buffer.from(load(good));
    const log = parseEventLog(bytes);
    const idx = verifyAsQuoted(log).events.find((e) => e.details?.kind === 'efi-variable' && e.details.name === 'SecureBoot')!.index;
    bytes.writeUInt32LE(0x80000002, log.events[idx]!.offset + 4); // EV_EFI_VARIABLE_BOOT
    const r = appraiseMeasuredBoot(verifyAsQuoted(parseEventLog(bytes)), { version: 1, secureBoot: false });
    expect(r.ok).toBe(false);
  });

  it('an unverifiable PCR8 string fails the kernel command line check', () => {
    const { state } = base();
    const forged = parseEventLog(appendEvent(load(good), 8, 13, Buffer.from('kernel_cmdline: /vmlinuz ro\0'), Buffer.from('something else')));
    const r = appraiseMeasuredBoot(verifyAsQuoted(forged), { version: 1, kernelCmdline: state.kernelCmdline ?? [] });
    expect(r.failures[0]?.reason).toMatch(/not covered/);
  });
});

describe('parseMeasuredBootReferenceState', () => {
  const codeOf = (input: unknown): string => {
    try {
      parseMeasuredBootReferenceState(input);
      return 'accepted';
    } catch (err) {
      if (err instanceof EventLogError) return err.code;
      throw err;
    }
  };
  it('accepts a full state', () => {
    expect(codeOf({ version: 1, secureBoot: true, pcrs: { sha256: { '7': ['ab'.repeat(32)] } }, kernelCmdline: ['ro quiet'], bootApplications: { sha256: [] } })).toBe('accepted');
  });
  it('rejects empty, unknown members, bad hex, bad PCR keys and invalid regexes', () => {
    expect(codeOf({ version: 1 })).toBe('REFERENCE_STATE_INVALID');
    expect(codeOf({ version: 2, secureBoot: true })).toBe('REFERENCE_STATE_INVALID');
    expect(codeOf({ version: 1, secureBoot: true, extra: 1 })).toBe('REFERENCE_STATE_INVALID');
    expect(codeOf({ version: 1, db: ['XYZ'] })).toBe('REFERENCE_STATE_INVALID');
    expect(codeOf({ version: 1, pcrs: { sha256: { '24': ['00'] } } })).toBe('REFERENCE_STATE_INVALID');
    expect(codeOf({ version: 1, kernelCmdline: ['('] })).toBe('REFERENCE_STATE_INVALID');
    expect(codeOf('nope')).toBe('REFERENCE_STATE_INVALID');
  });
});
