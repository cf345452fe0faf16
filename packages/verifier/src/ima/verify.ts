import type { EventLogBank } from '../eventlog/algorithms.js';
import { EventLogError } from '../eventlog/errors.js';
import type { ImaEntry } from './parse.js';
import { replayIma, type ImaCheckpoint } from './replay.js';

export interface VerifyImaOptions {
  /** Accept a SHA-1 quote. Default false. */
  readonly allowSha1?: boolean;
  /** Resume after a previous attestation; `entries` must start at its `nextIndex`. */
  readonly checkpoint?: ImaCheckpoint;
  /** The IMA PCR; default 10. */
  readonly pcr?: number;
}

declare const verifiedImaBrand: unique symbol;

/** IMA entries covered by a quoted PCR, and the checkpoint to resume from next time. */
export interface VerifiedImaLog {
  readonly [verifiedImaBrand]: true;
  /** Only the entries the quote covers (a log read after the quote may hold more; they wait for the next quote). */
  readonly entries: readonly ImaEntry[];
  readonly checkpoint: ImaCheckpoint;
}

/**
 * Verifies IMA entries against the quoted IMA PCR of one bank. Guarantees: the bank is not SHA-1
 * unless allowed; entries follow the checkpoint without gaps and name the IMA PCR; some prefix of
 * them (possibly empty, when the checkpoint value already equals the quote) replays to exactly
 * the quoted value; only that prefix is returned. Because the kernel appends to the list before
 * extending the PCR, a list read after the quote may be longer; the rest is left for the next
 * attestation (Keylime does the same). It does not appraise file digests (`appraiseIma`).
 */
export function verifyImaAgainstQuote(entries: readonly ImaEntry[], quoted: { readonly bank: EventLogBank; readonly value: Uint8Array }, options: VerifyImaOptions = {}): VerifiedImaLog {
  // SECURITY: SHA-1 replay is refused unless allowed; SHA-1 collisions let a forged log match (SHAttered).
  if (quoted.bank === 'sha1' && options.allowSha1 !== true) {
    throw new EventLogError('EVENTLOG_BANK_NOT_ACCEPTED', 'a SHA-1 quote is not accepted unless SHA-1 is allowed');
  }
  const start = options.checkpoint;
  let matched = start !== undefined && equalBytes(start.pcrValue, quoted.value) ? 0 : -1;
  let matchedValue = matched === 0 ? start?.pcrValue : undefined;
  const replayOptions = { bank: quoted.bank, ...(start ? { checkpoint: start } : {}), ...(options.pcr !== undefined ? { pcr: options.pcr } : {}) };
  replayIma(entries, replayOptions, (value, i) => {
    if (equalBytes(value, quoted.value)) {
      matched = i + 1;
      matchedValue = value;
    }
  });
  // SECURITY: no prefix of the log reproduces the quoted PCR, so the log is forged, reordered or from another boot (TCG IMA log verification).
  if (matched < 0 || matchedValue === undefined) {
    throw new EventLogError('IMA_REPLAY_MISMATCH', `IMA log does not replay to the quoted ${quoted.bank} PCR`);
  }
  const covered = entries.slice(0, matched);
  const nextIndex = (start?.nextIndex ?? 0) + matched;
  return { entries: covered, checkpoint: { bank: quoted.bank, nextIndex, pcrValue: matchedValue } } as unknown as VerifiedImaLog;
}

function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.byteLength !== b.byteLength) return false;
  for (let i = 0; i < a.byteLength; i++) if (a[i] !== b[i]) return false;
  return true;
}
