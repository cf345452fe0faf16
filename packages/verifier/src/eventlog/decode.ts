import { hash } from 'node:crypto';
import { algorithmById, type EventLogBank } from './algorithms.js';
import { parseEfiImageLoad } from './efi-image-load.js';
import { EFI_GLOBAL_VARIABLE_GUID, parseEfiVariable, parseSignatureData, parseSignatureLists, toHex, viewToString, type EfiSignature } from './efi-variable.js';
import { EventLogError } from './errors.js';
import * as T from './event-types.js';
import { ParsedEvent, type EventLog, type RawEvent } from './parse.js';

export type EventDetails =
  | { readonly kind: 'spec-id'; readonly specVersion: string; readonly platformClass: number; readonly algorithms: readonly { readonly algId: number; readonly digestSize: number }[] }
  | { readonly kind: 'startup-locality'; readonly locality: number }
  | { readonly kind: 'no-action'; readonly signature: string }
  | { readonly kind: 'separator'; readonly value: string }
  | {
      readonly kind: 'efi-variable';
      readonly variableGuid: string;
      readonly name: string;
      readonly dataLength: number;
      /** For SecureBoot: whether the variable is 1. */
      readonly enabled?: boolean;
      /** For PK/KEK/db/dbx/MokList and authority events: the certificates and hashes. */
      readonly signatures?: readonly EfiSignature[];
      /** For variables whose value is text (SbatLevel). */
      readonly text?: string;
    }
  | { readonly kind: 'boot-application'; readonly devicePath: string; readonly imageLength: string }
  | { readonly kind: 'ipl'; readonly text: string; readonly label: string | undefined; readonly payload: string }
  | { readonly kind: 'text'; readonly text: string }
  | { readonly kind: 'malformed'; readonly reason: string };

/**
 * An event with its data decoded. `dataVerified` says whether the data (or the part of it the spec
 * says is measured) hashes to the event's digest for `bank`; only then is `details` covered by the
 * PCR. The event type is never covered (go-attestation docs/event-log-disclosure.md), and for boot
 * applications and firmware blobs only the digest itself is measured.
 */
export interface DecodedEvent {
  readonly index: number;
  readonly pcr: number;
  readonly type: number;
  readonly typeName: string;
  /** Hex digest per bank the event carries. */
  readonly digests: Readonly<Partial<Record<EventLogBank, string>>>;
  readonly dataLength: number;
  readonly dataVerified: boolean;
  readonly details: EventDetails | undefined;
}

/** Labels grub and systemd put before a measured string; the digest covers only what follows. */
const IPL_LABELS: readonly { readonly label: string; readonly prefix: string }[] = [
  { label: 'grub_cmd', prefix: 'grub_cmd: ' },
  { label: 'kernel_cmdline', prefix: 'kernel_cmdline: ' },
  { label: 'grub_kernel_cmdline', prefix: 'grub_kernel_cmdline ' },
  { label: 'grub_cmd', prefix: 'grub_cmd ' },
  { label: 'module_cmdline', prefix: 'module_cmdline: ' },
];

/**
 * Decodes every event of an unverified log for display (`keyhold eventlog`) or for building a
 * reference state from a known-good log. Nothing here may feed a trust decision: use
 * `verifyEventLogAgainstQuote`, which decodes only after replay matches quoted PCRs.
 */
export function decodeUnverifiedEvents(log: EventLog, bank?: EventLogBank): DecodedEvent[] {
  const b = bank ?? preferredBank(log);
  const out: DecodedEvent[] = new Array<DecodedEvent>(log.events.length);
  for (let i = 0; i < log.events.length; i++) out[i] = decodeEvent(log.events[i] as RawEvent, b);
  return out;
}

export function preferredBank(log: EventLog): EventLogBank {
  for (const b of ['sha256', 'sha384', 'sha512', 'sha1'] as const) if (log.banks.includes(b)) return b;
  return log.banks[0] ?? 'sha1';
}

/** Decodes one event; `bank` selects the digest its data is checked against. */
export function decodeEvent(ev: RawEvent, bank: EventLogBank): DecodedEvent {
  const digests: Partial<Record<EventLogBank, string>> = {};
  let digest: Uint8Array | undefined;
  if (ev instanceof ParsedEvent) {
    // Fast path: encode digests straight from the log bytes, no views allocated.
    const { buf, bytes } = ev.source;
    ev.forEachDigest((algId, off, size) => {
      const b = algorithmById(algId)?.bank;
      if (b === undefined) return;
      digests[b] = buf.toString('hex', off, off + size);
      if (b === bank) digest = bytes.subarray(off, off + size);
    });
  } else {
    for (const d of ev.digests) {
      if (d.bank === undefined) continue;
      digests[d.bank] = toHex(d.digest);
      if (d.bank === bank) digest = d.digest;
    }
  }
  let details: EventDetails | undefined;
  let measured: Uint8Array[] | undefined;
  try {
    const r = decodeDetails(ev);
    details = r.details;
    measured = r.measured;
  } catch (err) {
    if (!(err instanceof EventLogError)) throw err;
    details = { kind: 'malformed', reason: err.message };
  }
  let dataVerified = false;
  if (digest !== undefined && ev.type !== T.EV_NO_ACTION) {
    if (measured === undefined) dataVerified = hashEquals(bank, ev.data, digest);
    else for (const m of measured) if ((dataVerified = hashEquals(bank, m, digest))) break;
  }
  return { index: ev.index, pcr: ev.pcr, type: ev.type, typeName: T.eventTypeName(ev.type), digests, dataLength: ev.data.byteLength, dataVerified, details };
}

function hashEquals(bank: EventLogBank, data: Uint8Array, digest: Uint8Array): boolean {
  // Hex output is about twice as cheap as a Buffer result (no backing store per call); digests are public.
  return hash(bank, data, 'hex') === toHex(digest);
}

interface DetailsResult {
  readonly details: EventDetails | undefined;
  /** Byte strings any of which, hashed, may equal the digest; defaults to the whole data. */
  readonly measured?: Uint8Array[];
}

function decodeDetails(ev: RawEvent): DetailsResult {
  const data = ev.data;
  switch (ev.type) {
    case T.EV_NO_ACTION:
      return { details: decodeNoAction(ev) };
    case T.EV_SEPARATOR:
      return { details: { kind: 'separator', value: toHex(data) } };
    case T.EV_EFI_VARIABLE_DRIVER_CONFIG:
    case T.EV_EFI_VARIABLE_BOOT:
    case T.EV_EFI_VARIABLE_BOOT2:
    case T.EV_EFI_VARIABLE_AUTHORITY: {
      const v = parseEfiVariable(data);
      const base = { kind: 'efi-variable' as const, variableGuid: v.variableGuid, name: v.name, dataLength: v.data.byteLength };
      // Some firmware measures only VariableData for boot variables (seen in the corpus; PFP 10.4.4 note).
      const measured = ev.type === T.EV_EFI_VARIABLE_BOOT ? [data, v.data] : [data];
      if (ev.type === T.EV_EFI_VARIABLE_AUTHORITY) {
        if (v.name === 'SbatLevel') return { details: { ...base, text: printable(v.data) }, measured };
        return { details: { ...base, signatures: v.data.byteLength > 0 ? [parseSignatureData(v.data)] : [] }, measured };
      }
      if (v.name === 'SecureBoot' && v.variableGuid === EFI_GLOBAL_VARIABLE_GUID) {
        return { details: { ...base, enabled: v.data.byteLength === 1 && v.data[0] === 1 }, measured };
      }
      if (['PK', 'KEK', 'db', 'dbx', 'dbt', 'MokList', 'MokListX', 'MokListTrusted'].includes(v.name) && v.data.byteLength > 0) {
        return { details: { ...base, signatures: parseSignatureLists(v.data) }, measured };
      }
      return { details: base, measured };
    }
    case T.EV_EFI_BOOT_SERVICES_APPLICATION:
    case T.EV_EFI_BOOT_SERVICES_DRIVER:
    case T.EV_EFI_RUNTIME_SERVICES_DRIVER: {
      const img = parseEfiImageLoad(data);
      // The digest is the image's Authenticode hash; the load event data is not measured (PFP 10.4.4).
      return { details: { kind: 'boot-application', devicePath: img.devicePath, imageLength: img.imageLength.toString() }, measured: [] };
    }
    case T.EV_EFI_ACTION:
    case T.EV_ACTION:
      return { details: { kind: 'text', text: printable(data) } };
    case T.EV_S_CRTM_VERSION:
      return { details: { kind: 'text', text: ucs2OrLatin1(data) } };
    case T.EV_IPL:
      return decodeIpl(data);
    default:
      return { details: undefined };
  }
}

function decodeIpl(data: Uint8Array): DetailsResult {
  const text = data.byteLength >= 2 && data[1] === 0 ? ucs2OrLatin1(data) : latin1(data);
  for (const { label, prefix } of IPL_LABELS) {
    if (!text.startsWith(prefix)) continue;
    const payloadWithNul = data.subarray(prefix.length);
    const payloadBytes = payloadWithNul[payloadWithNul.byteLength - 1] === 0 ? payloadWithNul.subarray(0, -1) : payloadWithNul;
    // grub measures the string after the label, with (older grub) or without (newer grub) its NUL.
    return { details: { kind: 'ipl', text: text.replace(/\0+$/, ''), label, payload: latin1(payloadBytes) }, measured: [payloadBytes, payloadWithNul] };
  }
  const withoutNul = data[data.byteLength - 1] === 0 ? data.subarray(0, -1) : data;
  const utf16NoNul = data.byteLength >= 2 && data[data.byteLength - 1] === 0 && data[data.byteLength - 2] === 0 ? data.subarray(0, -2) : data;
  return { details: { kind: 'ipl', text: text.replace(/\0+$/, ''), label: undefined, payload: text.replace(/\0+$/, '') }, measured: [data, withoutNul, utf16NoNul] };
}

function decodeNoAction(ev: RawEvent): EventDetails | undefined {
  const d = ev.data;
  const sig = latin1(d.subarray(0, Math.min(16, d.byteLength))).replace(/\0+$/, '');
  if (sig === 'StartupLocality' && d.byteLength === 17) return { kind: 'startup-locality', locality: d[16] as number };
  if (sig === 'Spec ID Event03' && d.byteLength >= 28) {
    const view = new DataView(d.buffer, d.byteOffset, d.byteLength);
    const n = view.getUint32(24, true);
    const algorithms: { algId: number; digestSize: number }[] = [];
    for (let i = 0; i < n && 32 + i * 4 <= d.byteLength; i++) {
      algorithms.push({ algId: view.getUint16(28 + i * 4, true), digestSize: view.getUint16(30 + i * 4, true) });
    }
    return { kind: 'spec-id', specVersion: `${d[21]}.${d[20]}.${d[22]}`, platformClass: view.getUint32(16, true), algorithms };
  }
  return { kind: 'no-action', signature: printable(d.subarray(0, Math.min(16, d.byteLength))) };
}

function latin1(b: Uint8Array): string {
  return viewToString(b, 'latin1');
}

function ucs2OrLatin1(b: Uint8Array): string {
  const looksUcs2 = b.byteLength >= 2 && b[1] === 0;
  const even = b.byteLength - (b.byteLength % 2);
  return (looksUcs2 ? viewToString(b.subarray(0, even), 'utf16le') : latin1(b)).replace(/\0+$/, '');
}

function printable(b: Uint8Array): string {
  return latin1(b).replace(/\0+$/, '').replace(/[\x00-\x08\x0b-\x1f\x7f-\xff]/g, '.');
}
