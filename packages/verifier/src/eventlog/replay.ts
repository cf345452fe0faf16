import { hash } from 'node:crypto';
import { algorithmByBank, type EventLogBank } from './algorithms.js';
import { EventLogError } from './errors.js';
import { EV_NO_ACTION } from './event-types.js';
import { ParsedEvent, type EventLog, type RawEvent } from './parse.js';

/** The result of replaying one bank. `pcrs` holds only PCRs that at least one event extended. */
export type BankReplay =
  | { readonly bank: EventLogBank; readonly ok: true; readonly pcrs: ReadonlyMap<number, Uint8Array>; readonly startupLocality: number | undefined }
  | { readonly bank: EventLogBank; readonly ok: false; readonly error: EventLogError };

export interface ReplayOptions {
  /** Banks to replay; defaults to every bank the log declares. */
  readonly banks?: readonly EventLogBank[];
}

const STARTUP_LOCALITY_SIGNATURE = 'StartupLocality\0';

/**
 * Replays an event log into PCR values per bank, following the TCG PC Client PFP rules:
 * PCRs start at zero; EV_NO_ACTION events are never extended; a StartupLocality EV_NO_ACTION
 * event on PCR0 sets PCR0's initial value to its locality byte (PFP 10.4.5.3); an event lacking a
 * digest for a bank fails that bank (other banks still replay). Replay alone proves nothing: only a
 * match against quoted PCRs does (`verifyEventLogAgainstQuote`).
 */
export function replayEventLog(log: EventLog, options: ReplayOptions = {}): Map<EventLogBank, BankReplay> {
  const banks = options.banks ?? log.banks;
  const out = new Map<EventLogBank, BankReplay>();
  for (const bank of banks) {
    try {
      out.set(bank, replayBank(log.events, bank));
    } catch (err) {
      if (!(err instanceof EventLogError)) throw err;
      out.set(bank, { bank, ok: false, error: err });
    }
  }
  return out;
}

/** The value a PCR holds before any extension: zero, except PCR0 after a StartupLocality event. */
export function initialPcrValue(bank: EventLogBank, pcr: number, startupLocality: number | undefined): Uint8Array {
  const value = new Uint8Array(algorithmByBank(bank).size);
  if (pcr === 0 && startupLocality !== undefined) value[value.length - 1] = startupLocality;
  return value;
}

function replayBank(events: readonly RawEvent[], bank: EventLogBank): BankReplay & { ok: true } {
  const { size, algId } = algorithmByBank(bank);
  const pcrs = new Map<number, Uint8Array>();
  const scratch = Buffer.alloc(size * 2);
  let startupLocality: number | undefined;
  for (const ev of events) {
    if (ev.type === EV_NO_ACTION) {
      // EV_NO_ACTION digests are not extended (PFP 10.4.5); only StartupLocality changes replay.
      const locality = startupLocalityOf(ev);
      if (locality !== undefined) {
        // SECURITY: a StartupLocality after PCR0 was extended, or a second one, would rewrite history the TPM never had (PFP 10.4.5.3).
        if (pcrs.has(0) || startupLocality !== undefined) {
          throw new EventLogError('EVENTLOG_MALFORMED', `event ${ev.index}: StartupLocality out of place`);
        }
        startupLocality = locality;
      }
      continue;
    }
    const current = pcrs.get(ev.pcr) ?? initialPcrValue(bank, ev.pcr, startupLocality);
    scratch.set(current, 0);
    let found = false;
    if (ev instanceof ParsedEvent) {
      // Fast path: copy the digest straight from the log, no view allocated.
      const off = ev.digestOffset(algId);
      if (off >= 0) {
        ev.source.buf.copy(scratch, size, off, off + size);
        found = true;
      }
    } else {
      for (const d of ev.digests) {
        if (d.algId === algId && d.digest.byteLength === size) {
          scratch.set(d.digest, size);
          found = true;
          break;
        }
      }
    }
    // SECURITY: an event without this bank's digest cannot be replayed; skipping it would let events hide from this bank (PFP 10.2.2).
    if (!found) throw new EventLogError('EVENTLOG_MISSING_DIGEST', `event ${ev.index} has no ${bank} digest`);
    pcrs.set(ev.pcr, hash(bank, scratch, 'buffer'));
  }
  return { bank, ok: true, pcrs, startupLocality };
}

function startupLocalityOf(ev: RawEvent): number | undefined {
  const d = ev.data;
  if (ev.pcr !== 0 || d.byteLength !== 17) return undefined;
  for (let i = 0; i < 16; i++) if (d[i] !== STARTUP_LOCALITY_SIGNATURE.charCodeAt(i)) return undefined;
  const locality = d[16] as number;
  // SECURITY: only localities 0 and 3 are defined for the S-CRTM (PFP 10.4.5.3); others would forge PCR0's start value.
  if (locality !== 0 && locality !== 3) throw new EventLogError('EVENTLOG_MALFORMED', `event ${ev.index}: invalid StartupLocality`);
  return locality;
}
