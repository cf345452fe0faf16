import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import type { EventLogBank } from './algorithms.js';
import { decodeUnverifiedEvents } from './decode.js';
import { EFI_GLOBAL_VARIABLE_GUID } from './efi-variable.js';
import { EventLogError } from './errors.js';
import { parseEventLog, type EventLog } from './parse.js';
import { replayEventLog } from './replay.js';
import { verifyEventLogAgainstQuote } from './verify.js';

// Fixtures: ../shared/corpus/eventlogs (google/go-tpm-tools internal/test/eventlogs).
const repoRoot = fileURLToPath(new URL('../../../../', import.meta.url));
const corpus = path.resolve(repoRoot, '../shared/corpus/eventlogs');
const haveCorpus = existsSync(corpus);
if (!haveCorpus) console.warn(`skipping event log verification tests: ${corpus} is absent`);
const load = (name: string): Buffer => readFileSync(path.join(corpus, name));

function codeOf(fn: () => unknown): string {
  try {
    fn();
    return 'accepted';
  } catch (err) {
    if (err instanceof EventLogError) return err.code;
    throw err;
  }
}

/** PCR values a TPM that ran this log would quote (the corpus expectations, TCG-spec replay). */
function quotedFromExpected(name: string, bank: EventLogBank, pcrs?: number[]): Map<number, Uint8Array> {
  const exp = JSON.parse(readFileSync(path.join(corpus, name.replace(/\.bin$/, '.expected.json')), 'utf8'));
  const values = (exp.pcrs_tcg_spec ?? exp.pcrs)[bank] as Record<string, string>;
  const m = new Map<number, Uint8Array>();
  for (const [k, v] of Object.entries(values)) if (pcrs === undefined || pcrs.includes(Number(k))) m.set(Number(k), Buffer.from(v, 'hex'));
  return m;
}

describe.skipIf(!haveCorpus)('verifyEventLogAgainstQuote', () => {
  const name = 'ubuntu-2104-no-dbx.bin';

  it('returns decoded events of quoted PCRs when the replay matches', () => {
    const log = parseEventLog(load(name));
    const v = verifyEventLogAgainstQuote(log, { bank: 'sha256', values: quotedFromExpected(name, 'sha256') });
    expect([...v.verifiedPcrs].sort((a, b) => a - b)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 14]);
    expect(v.events.every((e) => e.typeName !== 'EV_NO_ACTION')).toBe(true);
    const sb = v.events.find((e) => e.details?.kind === 'efi-variable' && e.details.name === 'SecureBoot');
    expect(sb?.dataVerified).toBe(true);
  });

  it('drops events of PCRs that were not quoted', () => {
    const log = parseEventLog(load(name));
    const v = verifyEventLogAgainstQuote(log, { bank: 'sha256', values: quotedFromExpected(name, 'sha256', [7]) });
    expect([...v.verifiedPcrs]).toEqual([7]);
    expect(v.events.every((e) => e.pcr === 7)).toBe(true);
  });

  it('rejects a log whose replay differs from a quoted PCR', () => {
    const log = parseEventLog(load(name));
    const values = quotedFromExpected(name, 'sha256');
    values.set(4, new Uint8Array(32));
    expect(codeOf(() => verifyEventLogAgainstQuote(log, { bank: 'sha256', values }))).toBe('EVENTLOG_REPLAY_MISMATCH');
  });

  it('checks quoted log PCRs the log has no events for against their initial value', () => {
    const n = 'glinux-alex.bin'; // no events for PCR 8 or 9
    const log = parseEventLog(load(n));
    const values = quotedFromExpected(n, 'sha256');
    values.set(8, new Uint8Array(32).fill(7));
    expect(codeOf(() => verifyEventLogAgainstQuote(log, { bank: 'sha256', values }))).toBe('EVENTLOG_REPLAY_MISMATCH');
    values.set(8, new Uint8Array(32));
    expect(codeOf(() => verifyEventLogAgainstQuote(log, { bank: 'sha256', values }))).toBe('accepted');
  });

  it('leaves PCRs outside logPcrs (IMA PCR 10) alone', () => {
    const log = parseEventLog(load(name));
    const values = quotedFromExpected(name, 'sha256');
    values.set(10, new Uint8Array(32).fill(9));
    const v = verifyEventLogAgainstQuote(log, { bank: 'sha256', values });
    expect(v.verifiedPcrs.has(10)).toBe(false);
    expect(v.verifiedPcrs.has(14)).toBe(true);
  });

  it('refuses SHA-1 unless allowed, and banks the log does not have', () => {
    const log = parseEventLog(load(name));
    const sha1 = { bank: 'sha1' as const, values: quotedFromExpected(name, 'sha1') };
    expect(codeOf(() => verifyEventLogAgainstQuote(log, sha1))).toBe('EVENTLOG_BANK_NOT_ACCEPTED');
    expect(codeOf(() => verifyEventLogAgainstQuote(log, sha1, { allowSha1: true }))).toBe('accepted');
    const gdc = parseEventLog(load('gdc-host.bin'));
    expect(codeOf(() => verifyEventLogAgainstQuote(gdc, { bank: 'sha384', values: new Map() }))).toBe('EVENTLOG_BANK_NOT_ACCEPTED');
  });

  it('never accepts the SHA-1 bank to stand in for a quoted SHA-256 bank', () => {
    const log = parseEventLog(load(name));
    // SHA-1 values presented as the SHA-256 quote: lengths and values differ, so it must fail.
    const values = quotedFromExpected(name, 'sha1');
    expect(codeOf(() => verifyEventLogAgainstQuote(log, { bank: 'sha256', values }))).toBe('EVENTLOG_REPLAY_MISMATCH');
  });

  it('honours StartupLocality: PCR0 as tpm2-tools 5.4 computes it is rejected', () => {
    const n = 'glinux-alex.bin';
    const log = parseEventLog(load(n));
    const exp = JSON.parse(readFileSync(path.join(corpus, 'glinux-alex.expected.json'), 'utf8'));
    const wrong = new Map([[0, Buffer.from(exp.pcrs.sha256['0'] as string, 'hex')]]);
    expect(codeOf(() => verifyEventLogAgainstQuote(log, { bank: 'sha256', values: wrong }))).toBe('EVENTLOG_REPLAY_MISMATCH');
    expect(codeOf(() => verifyEventLogAgainstQuote(log, { bank: 'sha256', values: quotedFromExpected(n, 'sha256', [0]) }))).toBe('accepted');
  });

  it('relabelling an event type keeps the replay but loses data coverage where the digest does not cover it', () => {
    // event-log-disclosure.md: the type is not measured. Relabel the SecureBoot variable as EV_EFI_ACTION.
    const bytes = Buffer.from(load(name));
    const log: EventLog = parseEventLog(bytes);
    const sb = decodeUnverifiedEvents(log).find((e) => e.details?.kind === 'efi-variable' && e.details.name === 'SecureBoot' && e.details.variableGuid === EFI_GLOBAL_VARIABLE_GUID);
    const raw = log.events[sb!.index]!;
    bytes.writeUInt32LE(0x80000007, raw.offset + 4);
    const forged = parseEventLog(bytes);
    const v = verifyEventLogAgainstQuote(forged, { bank: 'sha256', values: quotedFromExpected(name, 'sha256') });
    const ev = v.events.find((e) => e.index === sb!.index);
    expect(ev?.typeName).toBe('EV_EFI_ACTION');
    expect(ev?.details?.kind).toBe('text');
    // The data still hashes to the digest, so it is marked covered — but it no longer decodes as a variable.
    expect(ev?.details?.kind === 'efi-variable').toBe(false);
  });
});

describe.skipIf(!haveCorpus)('decodeUnverifiedEvents', () => {
  it('decodes Secure Boot variables, signature lists, boot applications, grub strings and separators', () => {
    const events = decodeUnverifiedEvents(parseEventLog(load('ubuntu-2104-no-dbx.bin')));
    const vars = events.filter((e) => e.details?.kind === 'efi-variable' && e.pcr === 7).map((e) => (e.details?.kind === 'efi-variable' ? e.details.name : ''));
    expect(vars).toEqual(expect.arrayContaining(['SecureBoot', 'PK', 'KEK', 'db', 'dbx']));
    const db = events.find((e) => e.details?.kind === 'efi-variable' && e.details.name === 'db');
    expect(db?.details?.kind === 'efi-variable' && db.details.signatures?.length).toBeGreaterThan(0);
    const apps = events.filter((e) => e.typeName === 'EV_EFI_BOOT_SERVICES_APPLICATION');
    expect(apps.length).toBeGreaterThan(0);
    expect(apps.every((a) => a.details?.kind === 'boot-application' && a.dataVerified === false)).toBe(true);
    const cmdline = events.find((e) => e.details?.kind === 'ipl' && e.details.label === 'kernel_cmdline');
    expect(cmdline?.dataVerified).toBe(true);
    expect(cmdline?.details?.kind === 'ipl' && cmdline.details.payload).toMatch(/vmlinuz/);
    expect(events.filter((e) => e.typeName === 'EV_SEPARATOR').every((e) => e.dataVerified)).toBe(true);
  });

  it('marks data as not covered when it is edited (digest mismatch)', () => {
    const bytes = Buffer.from(load('ubuntu-2104-no-dbx.bin'));
    const log = parseEventLog(bytes);
    const ev = decodeUnverifiedEvents(log).find((e) => e.details?.kind === 'ipl' && e.details.label === 'kernel_cmdline')!;
    const raw = log.events[ev.index]!;
    const pos = raw.data.byteOffset - bytes.byteOffset + raw.data.byteLength - 3;
    bytes[pos] = (bytes[pos] as number) ^ 1;
    const again = decodeUnverifiedEvents(parseEventLog(bytes))[ev.index];
    expect(again?.dataVerified).toBe(false);
    // ...and the replay does not change, which is why coverage must be checked per event.
    const before = replayEventLog(log).get('sha256');
    const after = replayEventLog(parseEventLog(bytes)).get('sha256');
    expect(before?.ok && after?.ok && Buffer.from(before.pcrs.get(8)!).equals(Buffer.from(after.pcrs.get(8)!))).toBe(true);
  });
});
