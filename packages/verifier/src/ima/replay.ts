import { hash } from 'node:crypto';
import { algorithmByBank, type EventLogBank } from '../eventlog/algorithms.js';
import { EventLogError } from '../eventlog/errors.js';
import type { ImaEntry } from './parse.js';

/** Where a previous attestation left the IMA replay: the next entry index and the PCR after the last verified entry. */
export interface ImaCheckpoint {
  readonly bank: EventLogBank;
  readonly nextIndex: number;
  readonly pcrValue: Uint8Array;
}

export interface ReplayImaOptions {
  readonly bank: EventLogBank;
  /** Resume from this checkpoint; entries must start at `checkpoint.nextIndex`. Default: a fresh PCR. */
  readonly checkpoint?: ImaCheckpoint;
  /** The IMA PCR; default 10. */
  readonly pcr?: number;
}

/** The value an entry extends into `bank`: all-0xFF for violations, the template hash if it is in this bank's algorithm, else a fresh hash of the template data. */
export function imaExtendValue(entry: ImaEntry, bank: EventLogBank): Uint8Array {
  const { size } = algorithmByBank(bank);
  // ima_main.c: violations are logged with a zero digest but extend all-ones so the PCR cannot be predicted.
  if (entry.violation) return new Uint8Array(size).fill(0xff);
  if (entry.templateHashHex.length === size * 2) return Buffer.from(entry.templateHashHex, 'hex');
  // Since Linux 5.8 each bank is extended with that bank's hash of the template data (ima_calc_field_array_hash).
  return hash(bank, entry.templateData, 'buffer');
}

/**
 * Replays IMA entries into the IMA PCR of one bank, calling `onStep(value, i)` after each entry
 * (used to find the prefix a quote covers). Returns the final PCR value.
 */
export function replayIma(entries: readonly ImaEntry[], options: ReplayImaOptions, onStep?: (value: Uint8Array, i: number) => void): Uint8Array {
  const { size } = algorithmByBank(options.bank);
  const pcr = options.pcr ?? 10;
  const cp = options.checkpoint;
  if (cp !== undefined && cp.bank !== options.bank) throw new TypeError('checkpoint bank differs from the replayed bank');
  let value: Uint8Array = cp?.pcrValue ?? new Uint8Array(size);
  let expectedIndex = cp?.nextIndex ?? 0;
  const scratch = Buffer.alloc(size * 2);
  for (let i = 0; i < entries.length; i++) {
    const e = entries[i] as ImaEntry;
    // SECURITY: entries must continue exactly where the checkpoint stopped; a gap or replay of old entries would skip appraisal (Keylime incremental attestation).
    if (e.index !== expectedIndex) throw new EventLogError('IMA_MALFORMED', `IMA entry ${e.index} is out of sequence (expected ${expectedIndex})`);
    // SECURITY: an entry for another PCR is not part of this replay; accepting it would let entries hide from the quote.
    if (e.pcr !== pcr) throw new EventLogError('IMA_MALFORMED', `IMA entry ${e.index} names PCR ${e.pcr}, not ${pcr}`);
    scratch.set(value, 0);
    scratch.set(imaExtendValue(e, options.bank), size);
    value = hash(options.bank, scratch, 'buffer');
    expectedIndex++;
    onStep?.(value, i);
  }
  return value;
}
