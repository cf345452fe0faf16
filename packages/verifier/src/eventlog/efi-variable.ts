import { hash } from 'node:crypto';
import { EventLogError } from './errors.js';

export const EFI_GLOBAL_VARIABLE_GUID = '8be4df61-93ca-11d2-aa0d-00e098032b8c';
export const EFI_IMAGE_SECURITY_DATABASE_GUID = 'd719b2cb-3d3a-4596-a3bc-dad00e67656f';
export const SHIM_LOCK_GUID = '605dab50-e046-4300-abb6-3dd810dd8b23';
export const EFI_CERT_X509_GUID = 'a5c059a1-94e4-4aa7-87b5-ab155c2bf072';
export const EFI_CERT_SHA256_GUID = 'c1c41626-504c-4092-aca9-41f936934328';

/** UEFI_VARIABLE_DATA (TCG PC Client PFP 10.4.6.2). */
export interface EfiVariable {
  readonly variableGuid: string;
  readonly name: string;
  readonly data: Uint8Array;
}

/** One EFI_SIGNATURE_DATA entry (UEFI 2.10 32.4.1), reduced to what policies compare. */
export interface EfiSignature {
  readonly signatureType: 'x509' | 'sha256' | 'other';
  readonly owner: string;
  /** For x509: SHA-256 of the certificate DER. For sha256: the listed image hash. Otherwise SHA-256 of the data. */
  readonly sha256: string;
}

const MAX_VARIABLE_NAME_CHARS = 1024;

/** Formats a little-endian EFI_GUID as its canonical text. */
export function formatGuid(b: Uint8Array): string {
  if (b.byteLength !== 16) throw new TypeError('a GUID is 16 bytes');
  const h = (i: number): string => HEX_BYTE[b[i] as number] as string;
  return `${h(3)}${h(2)}${h(1)}${h(0)}-${h(5)}${h(4)}-${h(7)}${h(6)}-${h(8)}${h(9)}-${h(10)}${h(11)}${h(12)}${h(13)}${h(14)}${h(15)}`;
}

const HEX_BYTE: readonly string[] = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, '0'));

const whole = new WeakMap<ArrayBufferLike, Buffer>();

/** A Buffer over the whole ArrayBuffer behind `b`, cached, so encoding a view allocates no Buffer. */
function wholeBuffer(b: Uint8Array): Buffer {
  let buf = whole.get(b.buffer);
  if (buf === undefined) {
    buf = Buffer.from(b.buffer);
    whole.set(b.buffer, buf);
  }
  return buf;
}

/** Lower-case hex of a byte view without copying it. */
export function toHex(b: Uint8Array): string {
  return wholeBuffer(b).toString('hex', b.byteOffset, b.byteOffset + b.byteLength);
}

/** Decodes a byte view as `encoding` without copying it. */
export function viewToString(b: Uint8Array, encoding: 'latin1' | 'utf16le'): string {
  return wholeBuffer(b).toString(encoding, b.byteOffset, b.byteOffset + b.byteLength);
}

/** Parses UEFI_VARIABLE_DATA. Throws EVENTLOG_MALFORMED if any length disagrees with the data. */
export function parseEfiVariable(data: Uint8Array): EfiVariable {
  // SECURITY: header lengths are checked before reading the name and data (oversized length fields).
  if (data.byteLength < 32) throw new EventLogError('EVENTLOG_MALFORMED', 'UEFI_VARIABLE_DATA is truncated');
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  const nameChars = view.getBigUint64(16, true);
  const dataLength = view.getBigUint64(24, true);
  const left = BigInt(data.byteLength - 32);
  // SECURITY: name and data lengths must exactly fill the event; trailing or missing bytes mean a forged structure.
  if (nameChars > BigInt(MAX_VARIABLE_NAME_CHARS) || nameChars * 2n + dataLength !== left) {
    throw new EventLogError('EVENTLOG_MALFORMED', 'UEFI_VARIABLE_DATA lengths do not match the event size');
  }
  const nameBytes = Number(nameChars) * 2;
  return {
    variableGuid: formatGuid(data.subarray(0, 16)),
    name: Buffer.from(data.subarray(32, 32 + nameBytes)).toString('utf16le').replace(/\0+$/, ''),
    data: data.subarray(32 + nameBytes),
  };
}

/** Parses a sequence of EFI_SIGNATURE_LISTs (db, dbx, KEK, PK, MokList contents). */
export function parseSignatureLists(data: Uint8Array): EfiSignature[] {
  const out: EfiSignature[] = [];
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  let offset = 0;
  while (offset < data.byteLength) {
    // SECURITY: each list header and size is checked against the bytes left (oversized length fields).
    if (data.byteLength - offset < 28) throw new EventLogError('EVENTLOG_MALFORMED', 'EFI_SIGNATURE_LIST is truncated');
    const type = formatGuid(data.subarray(offset, offset + 16));
    const listSize = view.getUint32(offset + 16, true);
    const headerSize = view.getUint32(offset + 20, true);
    const sigSize = view.getUint32(offset + 24, true);
    // SECURITY: the list must fit, and its entries must tile it exactly, or entries could be smuggled between lists.
    if (listSize < 28 || listSize > data.byteLength - offset || headerSize > listSize - 28 || sigSize < 16 || (listSize - 28 - headerSize) % sigSize !== 0) {
      throw new EventLogError('EVENTLOG_MALFORMED', 'EFI_SIGNATURE_LIST sizes are inconsistent');
    }
    const signatureType = type === EFI_CERT_X509_GUID ? 'x509' : type === EFI_CERT_SHA256_GUID ? 'sha256' : 'other';
    let lastOwner: Uint8Array | undefined;
    let lastOwnerText = '';
    for (let p = offset + 28 + headerSize; p < offset + listSize; p += sigSize) {
      const entry = data.subarray(p, p + sigSize);
      // Lists usually share one owner; reuse its text instead of formatting it per entry.
      if (lastOwner === undefined || !sameBytes16(lastOwner, entry)) {
        lastOwner = entry;
        lastOwnerText = formatGuid(entry.subarray(0, 16));
      }
      out.push(signatureEntry(signatureType, entry, lastOwnerText));
    }
    offset += listSize;
  }
  return out;
}

/** Parses one EFI_SIGNATURE_DATA (as EV_EFI_VARIABLE_AUTHORITY carries it); `signatureType` is inferred. */
export function parseSignatureData(data: Uint8Array): EfiSignature {
  // SECURITY: an entry shorter than its owner GUID is malformed (UEFI 2.10 32.4.1).
  if (data.byteLength < 17) throw new EventLogError('EVENTLOG_MALFORMED', 'EFI_SIGNATURE_DATA is truncated');
  const body = data.subarray(16);
  // An X.509 certificate DER starts with a SEQUENCE tag (0x30); a bare 32-byte value is an image hash.
  return signatureEntry(body[0] === 0x30 ? 'x509' : body.byteLength === 32 ? 'sha256' : 'other', data);
}

function signatureEntry(signatureType: EfiSignature['signatureType'], entry: Uint8Array, owner = formatGuid(entry.subarray(0, 16))): EfiSignature {
  const body = entry.subarray(16);
  if (signatureType === 'sha256' && body.byteLength !== 32) {
    throw new EventLogError('EVENTLOG_MALFORMED', 'EFI_CERT_SHA256 entry is not 32 bytes');
  }
  return { signatureType, owner, sha256: signatureType === 'sha256' ? toHex(body) : hash('sha256', body, 'hex') };
}

function sameBytes16(a: Uint8Array, b: Uint8Array): boolean {
  for (let i = 0; i < 16; i++) if (a[i] !== b[i]) return false;
  return true;
}
