import type { EventLogBank } from '../eventlog/algorithms.js';
import { decodeUnverifiedEvents, preferredBank } from '../eventlog/decode.js';
import { EFI_GLOBAL_VARIABLE_GUID, EFI_IMAGE_SECURITY_DATABASE_GUID } from '../eventlog/efi-variable.js';
import { EV_EFI_ACTION, EV_EFI_VARIABLE_DRIVER_CONFIG, EV_SEPARATOR } from '../eventlog/event-types.js';
import type { EventLog } from '../eventlog/parse.js';
import { replayEventLog } from '../eventlog/replay.js';
import type { MeasuredBootReferenceState } from './reference-state.js';

export interface CreateReferenceStateOptions {
  /** Bank for PCR values and boot application digests; defaults to the strongest the log has. */
  readonly bank?: EventLogBank;
  /** PCRs whose values to pin; default none (event-level expectations only). */
  readonly pinPcrs?: readonly number[];
}

/**
 * Builds a reference state from a log the owner knows to be good: Secure Boot state, PK/KEK/db
 * contents, all dbx entries as required, boot application digests and exact kernel command lines.
 */
export function createMeasuredBootReferenceState(log: EventLog, options: CreateReferenceStateOptions = {}): MeasuredBootReferenceState {
  const bank = options.bank ?? preferredBank(log);
  const events = decodeUnverifiedEvents(log, bank);
  const state: { -readonly [K in keyof MeasuredBootReferenceState]: MeasuredBootReferenceState[K] } = { version: 1 };
  if (options.pinPcrs !== undefined && options.pinPcrs.length > 0) {
    const replay = replayEventLog(log, { banks: [bank] }).get(bank);
    if (replay?.ok === true) {
      const values: Record<string, string[]> = {};
      for (const pcr of options.pinPcrs) {
        const v = replay.pcrs.get(pcr);
        if (v !== undefined) values[String(pcr)] = [Buffer.from(v).toString('hex')];
      }
      state.pcrs = { [bank]: values };
    }
  }
  let pastSeparator = false;
  for (const ev of events) {
    const d = ev.details;
    if (ev.pcr === 7 && ev.type === EV_SEPARATOR) pastSeparator = true;
    if (ev.pcr === 7 && !pastSeparator && ev.type === EV_EFI_VARIABLE_DRIVER_CONFIG && d?.kind === 'efi-variable') {
      const hashes = (d.signatures ?? []).map((s) => s.sha256);
      if (d.variableGuid === EFI_GLOBAL_VARIABLE_GUID && d.name === 'SecureBoot') state.secureBoot = d.enabled === true;
      if (d.variableGuid === EFI_GLOBAL_VARIABLE_GUID && d.name === 'PK') state.pk = hashes;
      if (d.variableGuid === EFI_GLOBAL_VARIABLE_GUID && d.name === 'KEK') state.kek = hashes;
      if (d.variableGuid === EFI_IMAGE_SECURITY_DATABASE_GUID && d.name === 'db') state.db = hashes;
      if (d.variableGuid === EFI_IMAGE_SECURITY_DATABASE_GUID && d.name === 'dbx') state.dbxRequired = hashes;
    }
    if (ev.pcr === 4 && !(ev.type === EV_SEPARATOR || ev.type === EV_EFI_ACTION)) {
      const digest = ev.digests[bank];
      if (digest !== undefined) {
        const list = [...(state.bootApplications?.[bank] ?? [])];
        if (!list.includes(digest)) list.push(digest);
        state.bootApplications = { [bank]: list };
      }
    }
    if (ev.pcr === 8 && d?.kind === 'ipl' && (d.label === 'kernel_cmdline' || d.label === 'grub_kernel_cmdline')) {
      const pattern = escapeRegex(d.payload);
      if (!(state.kernelCmdline ?? []).includes(pattern)) state.kernelCmdline = [...(state.kernelCmdline ?? []), pattern];
    }
  }
  return state;
}

function escapeRegex(s: string): string {
  return s.replace(/[\\^$.*+?()[\]{}|/]/g, '\\$&');
}
