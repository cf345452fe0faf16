import { EventLogError } from './errors.js';
import { formatGuid } from './efi-variable.js';

/**
 * The UEFI structures inside event data, decoded field by field for display (`keyhold eventlog`
 * prints them in tpm2_eventlog's layout). Nothing here is verified: the event type and most of this
 * data are not covered by the PCR extension (go-attestation docs/event-log-disclosure.md). Every
 * length is checked against the bytes present before anything is read or allocated; a structure
 * that does not fit throws EVENTLOG_MALFORMED, and callers then show the data as hex.
 */

/**
 * UEFI_VARIABLE_DATA (TCG PC Client PFP 10.2.6), read leniently as tpm2_eventlog does: the lengths
 * are the ones the structure states, and `variableData` holds the bytes of it that are present.
 * (Appraisal uses the strict reader, which refuses any disagreement between lengths and size.)
 */
export interface UnverifiedUefiVariable {
  readonly variableGuid: string;
  readonly unicodeNameLength: bigint;
  readonly variableDataLength: bigint;
  readonly unicodeName: string;
  readonly variableData: Uint8Array;
}

/** UEFI_IMAGE_LOAD_EVENT (TCG PC Client PFP 10.2.3). */
export interface UnverifiedImageLoad {
  readonly imageLocationInMemory: bigint;
  readonly imageLengthInMemory: bigint;
  readonly imageLinkTimeAddress: bigint;
  readonly lengthOfDevicePath: bigint;
  /** Every byte after the fixed header (the device path, as tpm2_eventlog prints it). */
  readonly devicePath: Uint8Array;
}

/** UEFI_PLATFORM_FIRMWARE_BLOB and, with a description, UEFI_PLATFORM_FIRMWARE_BLOB2 (PFP 10.2.4/10.2.5). */
export interface UnverifiedFirmwareBlob {
  readonly blobDescription: Uint8Array | undefined;
  readonly blobBase: bigint;
  readonly blobLength: bigint;
}

/** UEFI_GPT_DATA (PFP 10.2.6): the GPT header and the partitions the firmware measured. */
export interface UnverifiedGptEvent {
  readonly header: {
    readonly signature: Uint8Array;
    readonly revision: number;
    readonly headerSize: number;
    readonly headerCrc32: number;
    readonly myLba: bigint;
    readonly alternateLba: bigint;
    readonly firstUsableLba: bigint;
    readonly lastUsableLba: bigint;
    readonly diskGuid: string;
    readonly partitionEntryLba: bigint;
    readonly numberOfPartitionEntries: number;
    readonly sizeOfPartitionEntry: number;
    readonly partitionEntryArrayCrc32: number;
  };
  readonly partitions: readonly {
    readonly partitionTypeGuid: string;
    readonly uniquePartitionGuid: string;
    readonly startingLba: bigint;
    readonly endingLba: bigint;
    readonly attributes: bigint;
    /** The 36 UTF-16 code units of the name, up to the first NUL. */
    readonly partitionName: string;
  }[];
}

/** EFI_LOAD_OPTION (UEFI 2.10 3.1.3), the value of a `BootXXXX` variable. */
export interface UnverifiedLoadOption {
  readonly attributes: number;
  readonly filePathListLength: number;
  readonly description: string;
  /** Every byte after the description: the device path list, then any optional data. */
  readonly devicePath: Uint8Array;
}

/** One EFI_SIGNATURE_LIST with its entries (UEFI 2.10 32.4.1), as stored in PK/KEK/db/dbx. */
export interface UnverifiedSignatureList {
  readonly signatureType: string;
  readonly signatureListSize: number;
  readonly signatureHeaderSize: number;
  readonly signatureSize: number;
  readonly signatures: readonly { readonly owner: string; readonly data: Uint8Array }[];
}

const IMAGE_LOAD_HEADER = 32;
const GPT_HEADER = 92;
const GPT_ENTRY = 128;

function view(b: Uint8Array): DataView {
  return new DataView(b.buffer, b.byteOffset, b.byteLength);
}

function malformed(what: string): EventLogError {
  return new EventLogError('EVENTLOG_MALFORMED', `${what} does not fit the event data`);
}

export function decodeUnverifiedUefiVariable(data: Uint8Array): UnverifiedUefiVariable {
  // SECURITY: the header and the name are checked against the event size before reading; the
  // stated data length is never used to size anything (a hostile length must not allocate).
  if (data.byteLength < 32) throw malformed('UEFI_VARIABLE_DATA');
  const v = view(data);
  const nameChars = v.getBigUint64(16, true);
  const dataLength = v.getBigUint64(24, true);
  if (nameChars * 2n > BigInt(data.byteLength - 32)) throw malformed('UEFI_VARIABLE_DATA name');
  const nameEnd = 32 + Number(nameChars) * 2;
  const dataEnd = dataLength > BigInt(data.byteLength - nameEnd) ? data.byteLength : nameEnd + Number(dataLength);
  return {
    variableGuid: formatGuid(data.subarray(0, 16)),
    unicodeNameLength: nameChars,
    variableDataLength: dataLength,
    unicodeName: utf16UpToNul(data.subarray(32, nameEnd)),
    variableData: data.subarray(nameEnd, dataEnd),
  };
}

export function decodeUnverifiedImageLoad(data: Uint8Array): UnverifiedImageLoad {
  // SECURITY: the fixed header is checked against the event size before reading (truncated structures).
  if (data.byteLength < IMAGE_LOAD_HEADER) throw malformed('UEFI_IMAGE_LOAD_EVENT');
  const v = view(data);
  return {
    imageLocationInMemory: v.getBigUint64(0, true),
    imageLengthInMemory: v.getBigUint64(8, true),
    imageLinkTimeAddress: v.getBigUint64(16, true),
    lengthOfDevicePath: v.getBigUint64(24, true),
    devicePath: data.subarray(IMAGE_LOAD_HEADER),
  };
}

/** `withDescription` selects the BLOB2 layout (one size byte and a description before base and length). */
export function decodeUnverifiedFirmwareBlob(data: Uint8Array, withDescription: boolean): UnverifiedFirmwareBlob {
  // SECURITY: the description size byte and both 64-bit fields are checked against the event size.
  if (withDescription && data.byteLength < 1) throw malformed('UEFI_PLATFORM_FIRMWARE_BLOB2');
  const descSize = withDescription ? (data[0] as number) + 1 : 0;
  if (data.byteLength < descSize + 16) throw malformed('UEFI_PLATFORM_FIRMWARE_BLOB');
  const v = view(data);
  return {
    blobDescription: withDescription ? data.subarray(1, descSize) : undefined,
    blobBase: v.getBigUint64(descSize, true),
    blobLength: v.getBigUint64(descSize + 8, true),
  };
}

export function decodeUnverifiedGptEvent(data: Uint8Array): UnverifiedGptEvent {
  // SECURITY: header and partition count are checked against the event size before any entry is
  // read or any array is sized (a hostile NumberOfPartitions must not allocate).
  if (data.byteLength < GPT_HEADER + 8) throw malformed('UEFI_GPT_DATA');
  const v = view(data);
  const count = v.getBigUint64(GPT_HEADER, true);
  if (BigInt(data.byteLength - GPT_HEADER - 8) !== count * BigInt(GPT_ENTRY)) throw malformed('UEFI_GPT_DATA partition list');
  const partitions: UnverifiedGptEvent['partitions'][number][] = [];
  for (let off = GPT_HEADER + 8; off < data.byteLength; off += GPT_ENTRY) {
    const nameBytes = data.subarray(off + 56, off + GPT_ENTRY);
    partitions.push({
      partitionTypeGuid: formatGuid(data.subarray(off, off + 16)),
      uniquePartitionGuid: formatGuid(data.subarray(off + 16, off + 32)),
      startingLba: v.getBigUint64(off + 32, true),
      endingLba: v.getBigUint64(off + 40, true),
      attributes: v.getBigUint64(off + 48, true),
      partitionName: utf16UpToNul(nameBytes),
    });
  }
  return {
    header: {
      signature: data.subarray(0, 8),
      revision: v.getUint32(8, true),
      headerSize: v.getUint32(12, true),
      headerCrc32: v.getUint32(16, true),
      myLba: v.getBigUint64(24, true),
      alternateLba: v.getBigUint64(32, true),
      firstUsableLba: v.getBigUint64(40, true),
      lastUsableLba: v.getBigUint64(48, true),
      diskGuid: formatGuid(data.subarray(56, 72)),
      partitionEntryLba: v.getBigUint64(72, true),
      numberOfPartitionEntries: v.getUint32(80, true),
      sizeOfPartitionEntry: v.getUint32(84, true),
      partitionEntryArrayCrc32: v.getUint32(88, true),
    },
    partitions,
  };
}

export function decodeUnverifiedLoadOption(data: Uint8Array): UnverifiedLoadOption {
  // SECURITY: the fixed fields and the NUL-terminated description are bounded by the variable data.
  if (data.byteLength < 8) throw malformed('EFI_LOAD_OPTION');
  const v = view(data);
  let end = 6;
  while (end + 1 < data.byteLength && (data[end] !== 0 || data[end + 1] !== 0)) end += 2;
  if (end + 1 >= data.byteLength) throw malformed('EFI_LOAD_OPTION description');
  return {
    attributes: v.getUint32(0, true),
    filePathListLength: v.getUint16(4, true),
    description: utf16(data.subarray(6, end)),
    devicePath: data.subarray(end + 2),
  };
}

export function decodeUnverifiedSignatureLists(data: Uint8Array): UnverifiedSignatureList[] {
  const out: UnverifiedSignatureList[] = [];
  const v = view(data);
  let offset = 0;
  while (offset < data.byteLength) {
    // SECURITY: each list header and size is checked against the bytes left, and its entries must
    // tile it exactly, or entries could be smuggled between lists (UEFI 2.10 32.4.1).
    if (data.byteLength - offset < 28) throw malformed('EFI_SIGNATURE_LIST');
    const listSize = v.getUint32(offset + 16, true);
    const headerSize = v.getUint32(offset + 20, true);
    const sigSize = v.getUint32(offset + 24, true);
    if (listSize < 28 || listSize > data.byteLength - offset || headerSize > listSize - 28 || sigSize < 16 || (listSize - 28 - headerSize) % sigSize !== 0) {
      throw malformed('EFI_SIGNATURE_LIST');
    }
    const signatures: { owner: string; data: Uint8Array }[] = [];
    let owner = '';
    let ownerAt = -1;
    for (let p = offset + 28 + headerSize; p < offset + listSize; p += sigSize) {
      // Entries of a list usually share one owner: format it once (dbx holds hundreds of entries).
      if (ownerAt < 0 || !sameGuid(data, ownerAt, p)) owner = formatGuid(data.subarray(p, p + 16));
      ownerAt = p;
      signatures.push({ owner, data: data.subarray(p + 16, p + sigSize) });
    }
    out.push({ signatureType: formatGuid(data.subarray(offset, offset + 16)), signatureListSize: listSize, signatureHeaderSize: headerSize, signatureSize: sigSize, signatures });
    offset += listSize;
  }
  return out;
}

/** The locality of a StartupLocality EV_NO_ACTION event (PFP 10.4.5.3), undefined for other data. */
export function decodeUnverifiedStartupLocality(data: Uint8Array): number | undefined {
  if (data.byteLength < 17) return undefined;
  const sig = 'StartupLocality\0';
  for (let i = 0; i < 16; i++) if (data[i] !== sig.charCodeAt(i)) return undefined;
  return data[16];
}

function sameGuid(b: Uint8Array, a: number, c: number): boolean {
  for (let i = 0; i < 16; i++) if (b[a + i] !== b[c + i]) return false;
  return true;
}

function utf16(b: Uint8Array): string {
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength - (b.byteLength % 2)).toString('utf16le');
}

function utf16UpToNul(b: Uint8Array): string {
  let end = 0;
  while (end + 1 < b.byteLength && (b[end] !== 0 || b[end + 1] !== 0)) end += 2;
  return utf16(b.subarray(0, end));
}
