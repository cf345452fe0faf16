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
  /** 0..23, except for EV_NO_ACTION, which may name any index (it is never extended). */
  readonly pcr: number;
  readonly type: number;
  readonly digests: readonly EventDigest[];
  /** A view into the log bytes, not a copy. */
  readonly data: Uint8Array;
}

/** Where one log's bytes live, shared by its events. */
interface LogSource {
  readonly bytes: Uint8Array;
  /** The same bytes as a Buffer, for allocation-free copies and encodings. */
  readonly buf: Buffer;
  /** Digest size per algorithm id (crypto-agile), from the Spec ID header. */
  readonly sizes: ReadonlyMap<number, number>;
  readonly legacy: boolean;
}

/**
 * The parser's event: it records offsets and creates the `digests` and `data` views only when
 * asked, because view allocation dominates parsing large logs. Internal to the verifier.
 */
export class ParsedEvent implements RawEvent {
  private cachedDigests: EventDigest[] | undefined;

  constructor(
    readonly index: number,
    readonly offset: number,
    readonly pcr: number,
    readonly type: number,
    readonly source: LogSource,
    private readonly digestsStart: number,
    private readonly digestCount: number,
    private readonly dataStart: number,
    private readonly dataLength: number,
  ) {}

  get data(): Uint8Array {
    return this.source.bytes.subarray(this.dataStart, this.dataStart + this.dataLength);
  }

  get digests(): readonly EventDigest[] {
    if (this.cachedDigests === undefined) {
      const list: EventDigest[] = [];
      this.forEachDigest((algId, off, size) => {
        list.push({ algId, bank: algorithmById(algId)?.bank, digest: this.source.bytes.subarray(off, off + size) });
      });
      this.cachedDigests = list;
    }
    return this.cachedDigests;
  }

  /** Calls `fn(algId, offset, size)` for each digest, offsets into `source.bytes`. Sizes were bounds-checked by the parser. */
  forEachDigest(fn: (algId: number, offset: number, size: number) => void): void {
    if (this.source.legacy) {
      fn(0x0004, this.digestsStart, 20);
      return;
    }
    const b = this.source.bytes;
    let off = this.digestsStart;
    for (let i = 0; i < this.digestCount; i++) {
      const algId = (b[off] as number) | ((b[off + 1] as number) << 8);
      const size = this.source.sizes.get(algId) as number;
      fn(algId, off + 2, size);
      off += 2 + size;
    }
  }

  /** Calls `visit(algId, hex)` per digest; one hex conversion covers the event's whole digest list. */
  forEachDigestHex(visit: (algId: number, hex: string) => void): void {
    const buf = this.source.buf;
    if (this.source.legacy) {
      visit(0x0004, buf.toString('hex', this.digestsStart, this.digestsStart + 20));
      return;
    }
    // The digest list ends where the 4-byte event size field starts.
    const all = buf.toString('hex', this.digestsStart, this.dataStart - 4);
    const b = this.source.bytes;
    let off = this.digestsStart;
    for (let i = 0; i < this.digestCount; i++) {
      const algId = (b[off] as number) | ((b[off + 1] as number) << 8);
      const size = this.source.sizes.get(algId) as number;
      const at = (off + 2 - this.digestsStart) * 2;
      visit(algId, all.slice(at, at + size * 2));
      off += 2 + size;
    }
  }

  /** Offset of the digest for `algId` in `source.bytes`, or -1 when the event has none. */
  digestOffset(algId: number): number {
    if (this.source.legacy) return algId === 0x0004 ? this.digestsStart : -1;
    const b = this.source.bytes;
    let off = this.digestsStart;
    for (let i = 0; i < this.digestCount; i++) {
      const id = (b[off] as number) | ((b[off + 1] as number) << 8);
      if (id === algId) return off + 2;
      off += 2 + (this.source.sizes.get(id) as number);
    }
    return -1;
  }
}

/**
 * Calls `visit(algId, hex)` for each digest of `ev` in log order (lower-case hex), without
 * allocating a view per digest: the fast way to print digests of large logs.
 */
export function forEachDigestHex(ev: RawEvent, visit: (algId: number, hex: string) => void): void {
  if (ev instanceof ParsedEvent) {
    ev.forEachDigestHex(visit);
    return;
  }
  for (const d of ev.digests) visit(d.algId, Buffer.from(d.digest.buffer, d.digest.byteOffset, d.digest.byteLength).toString('hex'));
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
  const algIndex = new Map<number, number>();
  for (const alg of specId.algorithms) {
    sizes.set(alg.algId, alg.digestSize);
    algIndex.set(alg.algId, algIndex.size);
  }
  const source: LogSource = { bytes, buf: Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength), sizes, legacy: false };
  for (const alg of specId.algorithms) {
    const known = algorithmById(alg.algId);
    if (known !== undefined) banks.push(known.bank);
  }
  const events: RawEvent[] = [legacyEvent(first, source)];
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
    checkPcr(pcr, type, events.length);
    // SECURITY: a digest count beyond the declared algorithms is hostile (TPML_DIGEST_VALUES, PFP 10.2.2).
    if (count > specId.algorithms.length) {
      throw new EventLogError('EVENTLOG_LENGTH_EXCEEDED', `event ${events.length} declares ${count} digests, header declares ${specId.algorithms.length}`);
    }
    const digestsStart = offset;
    let seen = 0;
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
      const bit = 1 << (algIndex.get(algId) as number);
      if ((seen & bit) !== 0) throw new EventLogError('EVENTLOG_MALFORMED', `event ${events.length} repeats a digest algorithm`);
      seen |= bit;
      if (len - offset < size) throw truncated(events.length, start);
      offset += size;
    }
    if (len - offset < 4) throw truncated(events.length, start);
    const eventSize = view.getUint32(offset, true);
    offset += 4;
    // SECURITY: the event size is checked against the bytes left before slicing (oversized length fields).
    if (eventSize > len - offset) {
      throw new EventLogError('EVENTLOG_LENGTH_EXCEEDED', `event ${events.length} at offset ${start} declares more data than the log holds`);
    }
    events.push(new ParsedEvent(events.length, start, pcr, type, source, digestsStart, count, offset, eventSize));
    offset += eventSize;
  }
  return { format: 'crypto-agile', specId, banks, events, byteLength: len };
}

interface LegacyEvent {
  readonly index: number;
  readonly offset: number;
  readonly pcr: number;
  readonly type: number;
  readonly data: Uint8Array;
  readonly dataStart: number;
  readonly next: number;
}

function readLegacyEvent(bytes: Uint8Array, view: DataView, offset: number, index: number): LegacyEvent {
  const len = bytes.byteLength;
  if (len - offset < LEGACY_HEADER_BYTES) throw truncated(index, offset);
  const pcr = view.getUint32(offset, true);
  const type = view.getUint32(offset + 4, true);
  const eventSize = view.getUint32(offset + 28, true);
  checkPcr(pcr, type, index);
  // SECURITY: the event size is checked against the bytes left before slicing (oversized length fields).
  if (eventSize > len - offset - LEGACY_HEADER_BYTES) {
    throw new EventLogError('EVENTLOG_LENGTH_EXCEEDED', `event ${index} at offset ${offset} declares more data than the log holds`);
  }
  const dataStart = offset + LEGACY_HEADER_BYTES;
  return { index, offset, pcr, type, data: bytes.subarray(dataStart, dataStart + eventSize), dataStart, next: dataStart + eventSize };
}

/** A TCG_PCR_EVENT (legacy layout: one SHA-1 digest at offset 8) as a ParsedEvent over `source`. */
function legacyEvent(ev: LegacyEvent, source: LogSource): ParsedEvent {
  const legacySource: LogSource = source.legacy ? source : { ...source, legacy: true };
  return new ParsedEvent(ev.index, ev.offset, ev.pcr, ev.type, legacySource, ev.offset + 8, 1, ev.dataStart, ev.data.byteLength);
}

function parseLegacy(bytes: Uint8Array, view: DataView, first: LegacyEvent, maxEvents: number): EventLog {
  const source: LogSource = { bytes, buf: Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength), sizes: new Map([[0x0004, 20]]), legacy: true };
  const events: RawEvent[] = [legacyEvent(first, source)];
  let offset = first.next;
  while (offset < bytes.byteLength) {
    // SECURITY: bound the event count so a log of tiny events cannot exhaust memory (denial of service).
    if (events.length >= maxEvents) {
      throw new EventLogError('EVENTLOG_LENGTH_EXCEEDED', `event log has more than ${maxEvents} events`);
    }
    const ev = readLegacyEvent(bytes, view, offset, events.length);
    events.push(legacyEvent(ev, source));
    offset = ev.next;
  }
  return { format: 'sha1', specId: undefined, banks: ['sha1'], events, byteLength: bytes.byteLength };
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

/**
 * EV_NO_ACTION events are never extended into any PCR (TCG PC Client PFP 10.4.5), so their PCR
 * index is not checked: Windows' SHA-1 logs end with one whose index is 0xFFFFFFFF. Replay and
 * verification skip EV_NO_ACTION before looking at the index.
 */
function checkPcr(pcr: number, type: number, index: number): void {
  if (type === EV_NO_ACTION) return;
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
