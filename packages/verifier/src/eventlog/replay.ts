import { hash } from 'node:crypto';
import { algorithmByBank, type EventLogBank } from './algorithms.js';
import { EventLogError } from './errors.js';
import { EV_NO_ACTION } from './event-types.js';
import { MAX_PCR_INDEX, ParsedEvent, type EventLog, type RawEvent } from './parse.js';

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
  // All banks in one pass over the events. Each PCR of each bank has a scratch buffer holding
  // `value || digest`: the digest is copied in, the buffer hashed, and the result written back over
  // `value`. crypto.hash with hex output and a hex write back costs about half a Buffer result per
  // extension (measured: no backing store per event).
  const states = banks.map((bank) => ({ ...algorithmByBank(bank), slots: new Array<Buffer | undefined>(MAX_PCR_INDEX + 1), error: undefined as EventLogError | undefined }));
  let startupLocality: number | undefined;
  let pcr0Extended = false;
  let failure: EventLogError | undefined;
  for (const ev of log.events) {
    if (ev.type === EV_NO_ACTION) {
      // EV_NO_ACTION digests are not extended (PFP 10.4.5); only StartupLocality changes replay.
      let locality: number | undefined;
      try {
        locality = startupLocalityOf(ev);
      } catch (err) {
        if (!(err instanceof EventLogError)) throw err;
        failure = err;
        break;
      }
      if (locality !== undefined) {
        // SECURITY: a StartupLocality after PCR0 was extended, or a second one, would rewrite history the TPM never had (PFP 10.4.5.3).
        if (pcr0Extended || startupLocality !== undefined) {
          failure = new EventLogError('EVENTLOG_MALFORMED', `event ${ev.index}: StartupLocality out of place`);
          break;
        }
        startupLocality = locality;
      }
      continue;
    }
    // SECURITY: only the TPM's 24 PCRs can be extended; parseEventLog guarantees it, events built elsewhere are checked here.
    if (ev.pcr > MAX_PCR_INDEX) {
      failure = new EventLogError('EVENTLOG_MALFORMED', `event ${ev.index} names PCR ${ev.pcr}, above ${MAX_PCR_INDEX}`);
      break;
    }
    if (ev.pcr === 0) pcr0Extended = true;
    for (const st of states) {
      if (st.error !== undefined) continue;
      const { size, algId } = st;
      let scratch = st.slots[ev.pcr];
      if (scratch === undefined) {
        scratch = Buffer.alloc(size * 2);
        if (ev.pcr === 0 && startupLocality !== undefined) scratch[size - 1] = startupLocality;
        st.slots[ev.pcr] = scratch;
      }
      let found = false;
      if (ev instanceof ParsedEvent) {
        // Fast path: copy the digest straight from the log (a loop: cheaper than Buffer#copy for 20-64 bytes).
        const off = ev.digestOffset(algId);
        if (off >= 0) {
          const b = ev.source.bytes;
          for (let i = 0; i < size; i++) scratch[size + i] = b[off + i] as number;
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
      if (!found) {
        st.error = new EventLogError('EVENTLOG_MISSING_DIGEST', `event ${ev.index} has no ${st.bank} digest`);
        continue;
      }
      const digest = hash(st.bank, scratch, 'hex');
      if (hexWrite !== undefined) hexWrite.call(scratch, digest, 0, size);
      else scratch.write(digest, 0, size, 'hex');
    }
  }
  const out = new Map<EventLogBank, BankReplay>();
  for (const st of states) {
    const error = st.error ?? failure;
    if (error !== undefined) {
      out.set(st.bank, { bank: st.bank, ok: false, error });
      continue;
    }
    const pcrs = new Map<number, Uint8Array>();
    st.slots.forEach((scratch, pcr) => {
      if (scratch !== undefined) pcrs.set(pcr, new Uint8Array(scratch.subarray(0, st.size)));
    });
    out.set(st.bank, { bank: st.bank, ok: true, pcrs, startupLocality });
  }
  return out;
}

/** The value a PCR holds before any extension: zero, except PCR0 after a StartupLocality event. */
export function initialPcrValue(bank: EventLogBank, pcr: number, startupLocality: number | undefined): Uint8Array {
  const value = new Uint8Array(algorithmByBank(bank).size);
  if (pcr === 0 && startupLocality !== undefined) value[value.length - 1] = startupLocality;
  return value;
}

/** Buffer#hexWrite when present (it skips Buffer#write's encoding dispatch; measured), else Buffer#write is used. */
const hexWrite = (Buffer.prototype as { hexWrite?: (this: Buffer, s: string, offset: number, length: number) => number }).hexWrite;

function startupLocalityOf(ev: RawEvent): number | undefined {
  const d = ev.data;
  if (ev.pcr !== 0 || d.byteLength !== 17) return undefined;
  for (let i = 0; i < 16; i++) if (d[i] !== STARTUP_LOCALITY_SIGNATURE.charCodeAt(i)) return undefined;
  const locality = d[16] as number;
  // SECURITY: only localities 0 and 3 are defined for the S-CRTM (PFP 10.4.5.3); others would forge PCR0's start value.
  if (locality !== 0 && locality !== 3) throw new EventLogError('EVENTLOG_MALFORMED', `event ${ev.index}: invalid StartupLocality`);
  return locality;
}
