import type { EventLogBank } from './algorithms.js';
import { decodeEvent, type DecodedEvent } from './decode.js';
import { EventLogError } from './errors.js';
import { EV_NO_ACTION } from './event-types.js';
import type { EventLog } from './parse.js';
import { initialPcrValue, replayEventLog } from './replay.js';

/** PCR values taken from a verified quote: one bank, PCR index → value. */
export interface QuotedPcrs {
  readonly bank: EventLogBank;
  readonly values: ReadonlyMap<number, Uint8Array>;
}

export interface VerifyEventLogOptions {
  /** Accept a SHA-1 quote. Default false: SHA-1 collisions make a SHA-1 replay weak evidence. */
  readonly allowSha1?: boolean;
  /**
   * PCRs the boot log is the complete record of; every one of them that was quoted must match the
   * replay (a PCR with no events must hold its initial value). Default 0–9 and 14 (firmware, boot
   * loader, shim's MOK lists); PCR 10–13 and 15+ are extended by IMA and the OS outside this log.
   */
  readonly logPcrs?: readonly number[];
}

declare const verifiedBrand: unique symbol;

/**
 * An event log whose replay matched quoted PCRs. Only {@link verifyEventLogAgainstQuote} creates it.
 * `events` holds only events of `verifiedPcrs`; each event's `dataVerified` says whether its decoded
 * details are covered by its digest in `bank`.
 */
export interface VerifiedEventLog {
  readonly [verifiedBrand]: true;
  readonly bank: EventLogBank;
  readonly verifiedPcrs: ReadonlySet<number>;
  readonly pcrs: ReadonlyMap<number, Uint8Array>;
  readonly startupLocality: number | undefined;
  readonly events: readonly DecodedEvent[];
}

/** PCRs the firmware/boot log extends (0-9 and 14, shim's MOK lists). */
export const DEFAULT_LOG_PCRS: readonly number[] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 14];

/**
 * Verifies an event log against PCR values from a quote whose signature, nonce and PCR digest the
 * caller has already verified. Guarantees:
 * - the quoted bank is SHA-256/384/512, or SHA-1 only with `allowSha1`;
 * - the log carries a digest for that bank in every extended event (else EVENTLOG_MISSING_DIGEST);
 * - every quoted PCR in `logPcrs` equals the replay (PCRs without events: their initial value);
 * - only events of PCRs that were quoted and matched are returned, decoded with `dataVerified`.
 * It does not check what the events mean (that is `appraiseMeasuredBoot`), the quote itself, or any
 * PCR outside `logPcrs`. EV_NO_ACTION events are never returned: nothing covers them.
 */
export function verifyEventLogAgainstQuote(log: EventLog, quoted: QuotedPcrs, options: VerifyEventLogOptions = {}): VerifiedEventLog {
  const bank = quoted.bank;
  const logPcrs = options.logPcrs ?? DEFAULT_LOG_PCRS;
  // SECURITY: SHA-1 replay is refused unless the owner allows it; SHA-1 collisions let a forged log match (SHAttered; go-attestation).
  if (bank === 'sha1' && options.allowSha1 !== true) {
    throw new EventLogError('EVENTLOG_BANK_NOT_ACCEPTED', 'a SHA-1 quote is not accepted unless SHA-1 is allowed');
  }
  // SECURITY: replay only a bank the log declares; an unquoted bank proves nothing (go-attestation eventlog.go).
  if (!log.banks.includes(bank)) {
    throw new EventLogError('EVENTLOG_BANK_NOT_ACCEPTED', `the event log has no ${bank} bank`);
  }
  const replay = replayEventLog(log, { banks: [bank] }).get(bank);
  if (replay === undefined) throw new EventLogError('EVENTLOG_BANK_NOT_ACCEPTED', `the event log has no ${bank} bank`);
  if (!replay.ok) throw replay.error;

  const verifiedPcrs = new Set<number>();
  const pcrs = new Map<number, Uint8Array>();
  for (const pcr of logPcrs) {
    const quotedValue = quoted.values.get(pcr);
    if (quotedValue === undefined) continue;
    const replayed = replay.pcrs.get(pcr) ?? initialPcrValue(bank, pcr, replay.startupLocality);
    // SECURITY: a log whose replay differs from the quoted PCR is forged or incomplete; none of its events may be used (TCG PC Client PFP 10.2; event-log-disclosure.md).
    if (!equalBytes(replayed, quotedValue)) {
      throw new EventLogError('EVENTLOG_REPLAY_MISMATCH', `replayed ${bank} PCR ${pcr} does not match the quote`);
    }
    verifiedPcrs.add(pcr);
    pcrs.set(pcr, replayed);
  }
  const events: DecodedEvent[] = [];
  for (const ev of log.events) {
    // SECURITY: events of unquoted PCRs are unverified; dropping them keeps them out of every policy (go-attestation Verify).
    if (ev.type === EV_NO_ACTION || !verifiedPcrs.has(ev.pcr)) continue;
    events.push(decodeEvent(ev, bank));
  }
  return { bank, verifiedPcrs, pcrs, startupLocality: replay.startupLocality, events } as unknown as VerifiedEventLog;
}

function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.byteLength !== b.byteLength) return false;
  let diff = 0;
  for (let i = 0; i < a.byteLength; i++) diff |= (a[i] as number) ^ (b[i] as number);
  return diff === 0;
}
