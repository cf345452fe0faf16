import type { DecodedEvent } from '../eventlog/decode.js';
import { EFI_GLOBAL_VARIABLE_GUID, EFI_IMAGE_SECURITY_DATABASE_GUID } from '../eventlog/efi-variable.js';
import { EV_EFI_ACTION, EV_EFI_VARIABLE_DRIVER_CONFIG, EV_SEPARATOR } from '../eventlog/event-types.js';
import type { VerifiedEventLog } from '../eventlog/verify.js';
import type { MeasuredBootReferenceState } from './reference-state.js';

/** Which EAR trustworthiness claim a failed check bears on. */
export type MeasuredBootCategory = 'hardware' | 'configuration' | 'executables';

export interface MeasuredBootFailure {
  readonly check: 'pcrs' | 'secureBoot' | 'pk' | 'kek' | 'db' | 'dbxRequired' | 'bootApplications' | 'kernelCmdline';
  readonly category: MeasuredBootCategory;
  /** Names the first failing event or PCR; no digests or command lines (they are evidence). */
  readonly reason: string;
  readonly eventIndex?: number;
}

export interface MeasuredBootAppraisal {
  readonly ok: boolean;
  readonly failures: readonly MeasuredBootFailure[];
}

/** Labels whose payload is the kernel command line (grub 2.06+, older distro grub). */
const CMDLINE_LABELS = new Set(['kernel_cmdline', 'grub_kernel_cmdline']);

/**
 * Appraises a verified event log against a reference state. Guarantees, per check present:
 * - `pcrs`: each listed PCR of the verified bank was quoted and holds one of the allowed values;
 * - `secureBoot`/`pk`/`kek`/`db`/`dbxRequired`: PCR7 was quoted; every PCR7 event before its first
 *   separator has data covered by its digest; exactly one SecureBoot variable and at most one of
 *   each database was measured there, and their contents satisfy the state;
 * - `bootApplications`: PCR4 was quoted and every PCR4 event other than a covered separator or
 *   EV_EFI_ACTION string has an allowed digest (whatever type it claims), and there is at least one;
 * - `kernelCmdline`: PCR8 was quoted, every PCR8 event's data is covered by its digest, and every
 *   kernel command line among them fully matches a pattern (at least one is present).
 * Not checked: the label grub writes before a measured string is not covered by the digest, so a
 * forger can relabel a command line as a grub command; pair `kernelCmdline` with an exact PCR8 value
 * where that matters. PCRs not named by a check are not looked at.
 */
export function appraiseMeasuredBoot(log: VerifiedEventLog, state: MeasuredBootReferenceState): MeasuredBootAppraisal {
  const failures: MeasuredBootFailure[] = [];
  const byPcr = new Map<number, DecodedEvent[]>();
  for (const ev of log.events) {
    const list = byPcr.get(ev.pcr) ?? [];
    list.push(ev);
    byPcr.set(ev.pcr, list);
  }
  if (state.pcrs !== undefined) checkPcrs(log, state.pcrs, failures);
  if (state.secureBoot !== undefined || state.pk || state.kek || state.db || state.dbxRequired) {
    checkSecureBootConfig(log, byPcr.get(7) ?? [], state, failures);
  }
  if (state.bootApplications !== undefined) checkBootApplications(log, byPcr.get(4) ?? [], state.bootApplications, failures);
  if (state.kernelCmdline !== undefined) checkKernelCmdline(log, byPcr.get(8) ?? [], state.kernelCmdline, failures);
  return { ok: failures.length === 0, failures };
}

function checkPcrs(log: VerifiedEventLog, pcrs: NonNullable<MeasuredBootReferenceState['pcrs']>, failures: MeasuredBootFailure[]): void {
  const expected = pcrs[log.bank];
  // SECURITY: expectations for another bank cannot be checked; passing would accept any boot (fail closed).
  if (expected === undefined) {
    failures.push({ check: 'pcrs', category: 'hardware', reason: `reference state has no ${log.bank} PCR values` });
    return;
  }
  for (const [key, allowed] of Object.entries(expected)) {
    const pcr = Number(key);
    const value = log.pcrs.get(pcr);
    // SECURITY: an expected PCR that was not quoted is unverified (go-attestation: only quoted PCRs count).
    if (value === undefined) {
      failures.push({ check: 'pcrs', category: 'hardware', reason: `PCR ${pcr} was not quoted` });
      continue;
    }
    // SECURITY: a PCR value outside the allowed set means different firmware, configuration or boot chain.
    if (!allowed.includes(Buffer.from(value).toString('hex'))) {
      failures.push({ check: 'pcrs', category: 'hardware', reason: `PCR ${pcr} differs from the reference` });
    }
  }
}

function checkSecureBootConfig(log: VerifiedEventLog, pcr7: DecodedEvent[], state: MeasuredBootReferenceState, failures: MeasuredBootFailure[]): void {
  const fail = (check: MeasuredBootFailure['check'], reason: string, eventIndex?: number): void => {
    failures.push(eventIndex === undefined ? { check, category: 'configuration', reason } : { check, category: 'configuration', reason, eventIndex });
  };
  // SECURITY: Secure Boot state is only known from a quoted PCR7 (event-log-disclosure.md).
  if (!log.verifiedPcrs.has(7)) {
    fail('secureBoot', 'PCR 7 was not quoted');
    return;
  }
  const vars = new Map<string, DecodedEvent>();
  for (const ev of pcr7) {
    if (ev.type === EV_SEPARATOR && ev.dataVerified) break;
    // SECURITY: the event type is not measured; any PCR7 configuration event whose data is not covered could hide the real value (event-log-disclosure.md).
    if (!ev.dataVerified) {
      fail('secureBoot', `PCR 7 event ${ev.index} is not covered by its digest`, ev.index);
      return;
    }
    const d = ev.details;
    if (d?.kind !== 'efi-variable') continue;
    const isGlobal = d.variableGuid === EFI_GLOBAL_VARIABLE_GUID;
    const isDb = d.variableGuid === EFI_IMAGE_SECURITY_DATABASE_GUID;
    const key = isGlobal && ['SecureBoot', 'PK', 'KEK'].includes(d.name) ? d.name : isDb && ['db', 'dbx'].includes(d.name) ? d.name : undefined;
    if (key === undefined) continue;
    // SECURITY: a second measurement of the same variable would let a parser pick the favourable one.
    if (vars.has(key)) {
      fail('secureBoot', `PCR 7 measures ${key} twice (event ${ev.index})`, ev.index);
      return;
    }
    if (ev.type !== EV_EFI_VARIABLE_DRIVER_CONFIG) {
      fail('secureBoot', `PCR 7 event ${ev.index} carries ${key} under an unexpected type`, ev.index);
      return;
    }
    vars.set(key, ev);
  }
  if (state.secureBoot !== undefined) {
    const sb = vars.get('SecureBoot');
    const d = sb?.details;
    // SECURITY: Secure Boot must be measured and in the expected state, or unsigned boot code may have run (UEFI 2.10 32.3).
    if (sb === undefined || d?.kind !== 'efi-variable') fail('secureBoot', 'SecureBoot variable was not measured');
    else if (d.enabled !== state.secureBoot) fail('secureBoot', `SecureBoot is ${d.enabled === true ? 'enabled' : 'disabled'} (event ${sb.index})`, sb.index);
  }
  const allowedList = (check: 'pk' | 'kek' | 'db', name: string, allowed: readonly string[] | undefined): void => {
    if (allowed === undefined) return;
    const ev = vars.get(name);
    const d = ev?.details;
    // SECURITY: an unmeasured or unknown key database entry could authorise attacker-signed boot code (UEFI 2.10 32.6).
    if (ev === undefined || d?.kind !== 'efi-variable') {
      fail(check, `${name} was not measured`);
      return;
    }
    for (const s of d.signatures ?? []) {
      if (!allowed.includes(s.sha256)) {
        fail(check, `${name} (event ${ev.index}) holds an entry not in the reference`, ev.index);
        return;
      }
    }
  };
  allowedList('pk', 'PK', state.pk);
  allowedList('kek', 'KEK', state.kek);
  allowedList('db', 'db', state.db);
  if (state.dbxRequired !== undefined) {
    const ev = vars.get('dbx');
    const d = ev?.details;
    const present = new Set(d?.kind === 'efi-variable' ? (d.signatures ?? []).map((s) => s.sha256) : []);
    // SECURITY: a missing revocation lets known-vulnerable boot loaders run (e.g. BootHole, CVE-2020-10713).
    const missing = state.dbxRequired.filter((h) => !present.has(h)).length;
    if (missing > 0) fail('dbxRequired', `dbx lacks ${missing} required entr${missing === 1 ? 'y' : 'ies'}`, ev?.index);
  }
}

function checkBootApplications(log: VerifiedEventLog, pcr4: DecodedEvent[], byBank: NonNullable<MeasuredBootReferenceState['bootApplications']>, failures: MeasuredBootFailure[]): void {
  const fail = (reason: string, eventIndex?: number): void => {
    failures.push(eventIndex === undefined ? { check: 'bootApplications', category: 'executables', reason } : { check: 'bootApplications', category: 'executables', reason, eventIndex });
  };
  const allowed = byBank[log.bank];
  if (allowed === undefined) return fail(`reference state has no ${log.bank} boot application digests`);
  // SECURITY: boot applications are only known from a quoted PCR4 (TCG PC Client PFP 3.3.4.5).
  if (!log.verifiedPcrs.has(4)) return fail('PCR 4 was not quoted');
  let apps = 0;
  for (const ev of pcr4) {
    if ((ev.type === EV_SEPARATOR || ev.type === EV_EFI_ACTION) && ev.dataVerified) continue;
    // SECURITY: every other PCR4 digest is treated as code, whatever type it claims, so relabelling an application cannot hide it (event-log-disclosure.md).
    const digest = ev.digests[log.bank];
    if (digest === undefined || !allowed.includes(digest)) return fail(`boot application at event ${ev.index} is not in the reference`, ev.index);
    apps++;
  }
  // SECURITY: a PCR4 with no application at all means the log does not describe a boot (truncated evidence).
  if (apps === 0) fail('PCR 4 records no boot application');
}

function checkKernelCmdline(log: VerifiedEventLog, pcr8: DecodedEvent[], patterns: readonly string[], failures: MeasuredBootFailure[]): void {
  const fail = (reason: string, eventIndex?: number): void => {
    failures.push(eventIndex === undefined ? { check: 'kernelCmdline', category: 'configuration', reason } : { check: 'kernelCmdline', category: 'configuration', reason, eventIndex });
  };
  // SECURITY: the command line is only known from a quoted PCR8 (grub TPM measurements).
  if (!log.verifiedPcrs.has(8)) return fail('PCR 8 was not quoted');
  const regexes = patterns.map((p) => new RegExp(`^(?:${p})$`, 'u'));
  let seen = 0;
  for (const ev of pcr8) {
    // SECURITY: a PCR8 string not covered by its digest could be a forged command line (event-log-disclosure.md).
    if (!ev.dataVerified) return fail(`PCR 8 event ${ev.index} is not covered by its digest`, ev.index);
    const d = ev.details;
    if (d?.kind !== 'ipl' || d.label === undefined || !CMDLINE_LABELS.has(d.label)) continue;
    seen++;
    // SECURITY: a command line outside the reference can disable security features (init=, lockdown=, module.sig_enforce=).
    if (!regexes.some((r) => r.test(d.payload))) return fail(`kernel command line at event ${ev.index} matches no pattern`, ev.index);
  }
  if (seen === 0) fail('PCR 8 records no kernel command line');
}
