import { algorithmById, type EventLogBank } from './algorithms.js';
import { EventLogError } from './errors.js';
import { EV_NO_ACTION } from './event-types.js';

/** One digest of an event. `bank` is undefined for algorithms this verifier does not replay (e.g. SM3). */
export interface EventDigest {
  readonly algId: number;
  readonly bank: EventLogBank | undefined;
  readonly digest: Uint8Array;
}

/**
 * One event exactly as the log states it. Nothing here is verified: the event type and the data are
 * not covered by the PCR extension (go-attestation docs/event-log-disclosure.md).
 */
export interface RawEvent {
  /** Position in the log, the Spec ID header event (crypto-agile logs) being 0. */
  readonly index: number;
  /** Byte offset of the event in the log. */
  readonly offset: number;
  readonly pcr: number;
  readonly type: number;
  readonly digests: readonly EventDigest[];
  /** A view into the log bytes, not a copy. */
  readonly data: Uint8Array;
}

export interface SpecIdAlgorithm {
  readonly algId: number;
  readonly digestSize: number;
}

export interface SpecIdHeader {
  readonly platformClass: number;
  readonly specVersion: string;
  readonly uintnSize: number;
  readonly algorithms: readonly SpecIdAlgorithm[];
  readonly vendorInfo: Uint8Array;
}

/** A parsed but unverified TCG PC Client event log. */
export interface EventLog {
  readonly format: 'sha1' | 'crypto-agile';
  /** Present for crypto-agile logs. */
  readonly specId: SpecIdHeader | undefined;
  /** Banks every event may carry a digest for (`['sha1']` for a legacy log). */
  readonly banks: readonly EventLogBank[];
  readonly events: readonly RawEvent[];
  readonly byteLength: number;
}

export interface ParseEventLogOptions {
  /** Upper bound on the number of events; hostile logs fail instead of exhausting memory. */
  readonly maxEvents?: number;
}

/** Highest PCR index of a PC Client TPM (24 PCRs, TCG PC Client Platform TPM Profile 4.6.1). */
export const MAX_PCR_INDEX = 23;
const DEFAULT_MAX_EVENTS = 1_000_000;
const MAX_SPEC_ID_ALGORITHMS = 16;
const SPEC_ID_SIGNATURE_03 = 'Spec ID Event03';
const LEGACY_HEADER_BYTES = 32; // pcr(4) type(4) sha1(20) eventSize(4)

/**
 * Parses a TCG PC Client event log (`binary_bios_measurements`): the legacy SHA-1 format
 * (TCG_PCR_EVENT) or the crypto-agile format (Spec ID Event03 followed by TCG_PCR_EVENT2).
 * Every length is checked against the bytes left before anything is read or allocated; a malformed
 * log throws {@link EventLogError}. The result is unverified: use `verifyEventLogAgainstQuote`.
 */
export function parseEventLog(input: Uint8Array, options: ParseEventLogOptions = {}): EventLog {
  // Views into a plain Uint8Array are much cheaper to create than Buffer slices.
  const bytes = new Uint8Array(input.buffer, input.byteOffset, input.byteLength);
  const maxEvents = options.maxEvents ?? DEFAULT_MAX_EVENTS;
  if (!Number.isSafeInteger(maxEvents) || maxEvents < 1) throw new TypeError('maxEvents must be a positive integer');
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const len = bytes.byteLength;

  // SECURITY: an empty or sub-header log cannot be replayed; reject instead of reading past the end (TCG PC Client PFP 10.2.1).
  if (len < LEGACY_HEADER_BYTES) {
    throw new EventLogError('EVENTLOG_TRUNCATED', 'event log is shorter than one event header');
  }
  const first = readLegacyEvent(bytes, view, 0, 0);
  const specId = first.type === EV_NO_ACTION && first.pcr === 0 ? parseSpecIdIfPresent(first.data) : undefined;
  if (specId === undefined) return parseLegacy(bytes, view, first, maxEvents);

  // Digest sizes come from the Spec ID header (TCG PC Client PFP 10.4.5.1).
  const sizes = new Map<number, number>();
  const banks: EventLogBank[] = [];
  for (const alg of specId.algorithms) sizes.set(alg.algId, alg.digestSize);
  for (const alg of specId.algorithms) {
    const known = algorithmById(alg.algId);
    if (known !== undefined) banks.push(known.bank);
  }
  const events: RawEvent[] = [first];
  let offset = first.next;
  while (offset < len) {
    // SECURITY: bound the event count so a log of tiny events cannot exhaust memory (denial of service).
    if (events.length >= maxEvents) {
      throw new EventLogError('EVENTLOG_LENGTH_EXCEEDED', `event log has more than ${maxEvents} events`);
    }
    const start = offset;
    // SECURITY: every fixed-size field is checked against the bytes left before reading (truncated logs).
    if (len - offset < 12) throw truncated(events.length, start);
    const pcr = view.getUint32(offset, true);
    const type = view.getUint32(offset + 4, true);
    const count = view.getUint32(offset + 8, true);
    offset += 12;
    checkPcr(pcr, events.length);
    // SECURITY: a digest count beyond the declared algorithms is hostile (TPML_DIGEST_VALUES, PFP 10.2.2).
    if (count > specId.algorithms.length) {
      throw new EventLogError('EVENTLOG_LENGTH_EXCEEDED', `event ${events.length} declares ${count} digests, header declares ${specId.algorithms.length}`);
    }
    const digests: EventDigest[] = [];
    for (let i = 0; i < count; i++) {
      if (len - offset < 2) throw truncated(events.length, start);
      const algId = view.getUint16(offset, true);
      offset += 2;
      const size = sizes.get(algId);
      // SECURITY: an algorithm absent from the Spec ID header has no known size; guessing would desynchronise parsing (PFP 10.4.5.1).
      if (size === undefined) {
        throw new EventLogError('EVENTLOG_MALFORMED', `event ${events.length} uses an algorithm not declared in the Spec ID header`);
      }
      // SECURITY: two digests for one bank would let a parser pick the wrong one (digest confusion).
      for (const d of digests) {
        if (d.algId === algId) throw new EventLogError('EVENTLOG_MALFORMED', `event ${events.length} repeats a digest algorithm`);
      }
      if (len - offset < size) throw truncated(events.length, start);
      digests.push({ algId, bank: algorithmById(algId)?.bank, digest: bytes.subarray(offset, offset + size) });
      offset += size;
    }
    if (len - offset < 4) throw truncated(events.length, start);
    const eventSize = view.getUint32(offset, true);
    offset += 4;
    // SECURITY: the event size is checked against the bytes left before slicing (oversized length fields).
    if (eventSize > len - offset) {
      throw new EventLogError('EVENTLOG_LENGTH_EXCEEDED', `event ${events.length} at offset ${start} declares more data than the log holds`);
    }
    events.push({ index: events.length, offset: start, pcr, type, digests, data: bytes.subarray(offset, offset + eventSize) });
    offset += eventSize;
  }
  return { format: 'crypto-agile', specId, banks, events, byteLength: len };
}

interface LegacyEvent extends RawEvent {
  readonly next: number;
}

function readLegacyEvent(bytes: Uint8Array, view: DataView, offset: number, index: number): LegacyEvent {
  const len = bytes.byteLength;
  if (len - offset < LEGACY_HEADER_BYTES) throw truncated(index, offset);
  const pcr = view.getUint32(offset, true);
  const type = view.getUint32(offset + 4, true);
  const digest = bytes.subarray(offset + 8, offset + 28);
  const eventSize = view.getUint32(offset + 28, true);
  checkPcr(pcr, index);
  // SECURITY: the event size is checked against the bytes left before slicing (oversized length fields).
  if (eventSize > len - offset - LEGACY_HEADER_BYTES) {
    throw new EventLogError('EVENTLOG_LENGTH_EXCEEDED', `event ${index} at offset ${offset} declares more data than the log holds`);
  }
  const dataStart = offset + LEGACY_HEADER_BYTES;
  return {
    index,
    offset,
    pcr,
    type,
    digests: [{ algId: 0x0004, bank: 'sha1', digest }],
    data: bytes.subarray(dataStart, dataStart + eventSize),
    next: dataStart + eventSize,
  };
}

function parseLegacy(bytes: Uint8Array, view: DataView, first: LegacyEvent, maxEvents: number): EventLog {
  const events: RawEvent[] = [stripNext(first)];
  let offset = first.next;
  while (offset < bytes.byteLength) {
    // SECURITY: bound the event count so a log of tiny events cannot exhaust memory (denial of service).
    if (events.length >= maxEvents) {
      throw new EventLogError('EVENTLOG_LENGTH_EXCEEDED', `event log has more than ${maxEvents} events`);
    }
    const ev = readLegacyEvent(bytes, view, offset, events.length);
    events.push(stripNext(ev));
    offset = ev.next;
  }
  return { format: 'sha1', specId: undefined, banks: ['sha1'], events, byteLength: bytes.byteLength };
}

function stripNext(ev: LegacyEvent): RawEvent {
  return { index: ev.index, offset: ev.offset, pcr: ev.pcr, type: ev.type, digests: ev.digests, data: ev.data };
}

/** Returns the Spec ID Event03 header when `data` carries one, undefined for other EV_NO_ACTION data. */
function parseSpecIdIfPresent(data: Uint8Array): SpecIdHeader | undefined {
  if (data.byteLength < 16) return undefined;
  const signature = latin1(data.subarray(0, 16));
  if (signature !== `${SPEC_ID_SIGNATURE_03}\0`) return undefined;
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  // SECURITY: the Spec ID header is bounds-checked field by field; it sizes every later digest (PFP 10.4.5.1).
  if (data.byteLength < 28) throw new EventLogError('EVENTLOG_TRUNCATED', 'Spec ID header is truncated');
  const platformClass = view.getUint32(16, true);
  const minor = view.getUint8(20);
  const major = view.getUint8(21);
  const errata = view.getUint8(22);
  const uintnSize = view.getUint8(23);
  const numberOfAlgorithms = view.getUint32(24, true);
  // SECURITY: a huge algorithm count would make every event's digest loop hostile (denial of service).
  if (numberOfAlgorithms === 0 || numberOfAlgorithms > MAX_SPEC_ID_ALGORITHMS) {
    throw new EventLogError('EVENTLOG_MALFORMED', 'Spec ID header declares an invalid number of algorithms');
  }
  if (data.byteLength < 28 + numberOfAlgorithms * 4 + 1) throw new EventLogError('EVENTLOG_TRUNCATED', 'Spec ID header is truncated');
  const algorithms: SpecIdAlgorithm[] = [];
  for (let i = 0; i < numberOfAlgorithms; i++) {
    const algId = view.getUint16(28 + i * 4, true);
    const digestSize = view.getUint16(30 + i * 4, true);
    const known = algorithmById(algId);
    // SECURITY: a wrong size for a known algorithm would misalign digests and let bytes shift between fields (PFP 10.4.5.1).
    if (known !== undefined && known.size !== digestSize) {
      throw new EventLogError('EVENTLOG_MALFORMED', 'Spec ID header declares a wrong digest size for a known algorithm');
    }
    // SECURITY: zero-size or duplicate algorithms make the TPML_DIGEST_VALUES parse ambiguous.
    if (digestSize === 0 || algorithms.some((a) => a.algId === algId)) {
      throw new EventLogError('EVENTLOG_MALFORMED', 'Spec ID header declares an empty or repeated algorithm');
    }
    algorithms.push({ algId, digestSize });
  }
  const vendorOffset = 28 + numberOfAlgorithms * 4;
  const vendorInfoSize = view.getUint8(vendorOffset);
  // SECURITY: vendor info length checked against the header data (oversized length fields).
  if (vendorInfoSize > data.byteLength - vendorOffset - 1) {
    throw new EventLogError('EVENTLOG_LENGTH_EXCEEDED', 'Spec ID vendor info exceeds the header');
  }
  return {
    platformClass,
    specVersion: `${major}.${minor}.${errata}`,
    uintnSize,
    algorithms,
    vendorInfo: data.subarray(vendorOffset + 1, vendorOffset + 1 + vendorInfoSize),
  };
}

function checkPcr(pcr: number, index: number): void {
  // SECURITY: a PCR index outside the TPM's 24 PCRs cannot be quoted and would index past replay state.
  if (pcr > MAX_PCR_INDEX) throw new EventLogError('EVENTLOG_MALFORMED', `event ${index} names PCR ${pcr}, above ${MAX_PCR_INDEX}`);
}

function truncated(index: number, offset: number): EventLogError {
  return new EventLogError('EVENTLOG_TRUNCATED', `event ${index} at offset ${offset} is truncated`);
}

function latin1(bytes: Uint8Array): string {
  let s = '';
  for (const b of bytes) s += String.fromCharCode(b);
  return s;
}
