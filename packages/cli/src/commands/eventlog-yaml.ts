import { isUtf8 } from 'node:buffer';
import { createRequire } from 'node:module';
import type { CST } from 'yaml';
import {
  EventLogError,
  decodeUnverifiedFirmwareBlob,
  decodeUnverifiedGptEvent,
  decodeUnverifiedImageLoad,
  decodeUnverifiedLoadOption,
  decodeUnverifiedSignatureLists,
  decodeUnverifiedStartupLocality,
  decodeUnverifiedUefiVariable,
  eventTypeName,
  forEachDigestHex,
  formatGuid,
  type BankReplay,
  type EventLogBank,
  type RawEvent,
} from '@keyhold/verifier/eventlog';

/**
 * `keyhold eventlog`'s text output: valid YAML in the layout of `tpm2_eventlog --eventlog-version=2`
 * (tpm2-tools 5.4): `version`, an `events` list with tpm2_eventlog's keys (EventNum, PCRIndex,
 * EventType, DigestCount, Digests, EventSize, Event / SpecID) and `pcrs` with left-aligned indices.
 *
 * Each event is rendered on its own so that the command can stream. The `yaml` library's document
 * stringifier costs ~100 µs per event (10 s for a 100k-event log, three times tpm2_eventlog), so the
 * fixed layout is written here and only scalars that need quoting go through yaml's own scalar
 * stringifier ({@link yamlString}). Deliberate differences from tpm2_eventlog, all to stay valid YAML:
 * SHA-1-format logs get `EventNum` and a `Digests` list like crypto-agile ones (tpm2-tools prints
 * duplicate keys there), strings are double-quoted scalars holding the decoded text (tpm2-tools
 * prints raw bytes, sometimes inside a block scalar), hex values are always quoted, a structure that
 * does not fit its event is printed as hex instead of failing the log, and PCR indices are unsigned.
 */

const HEADER = '---\nversion: 2\nevents:\n';

const ALGORITHM_NAMES = new Map<number, string>([
  [0x0004, 'sha1'],
  [0x000b, 'sha256'],
  [0x000c, 'sha384'],
  [0x000d, 'sha512'],
  [0x0012, 'sm3_256'],
  [0x0027, 'sha3_256'],
  [0x0028, 'sha3_384'],
  [0x0029, 'sha3_512'],
]);

// Event types with a structured `Event` (TCG PC Client PFP 10.4.1).
const EV_POST_CODE = 0x1;
const EV_NO_ACTION = 0x3;
const EV_S_CRTM_CONTENTS = 0x7;
const EV_IPL = 0xd;
const EV_EFI_VARIABLE_DRIVER_CONFIG = 0x80000001;
const EV_EFI_VARIABLE_BOOT = 0x80000002;
const EV_EFI_BOOT_SERVICES_APPLICATION = 0x80000003;
const EV_EFI_BOOT_SERVICES_DRIVER = 0x80000004;
const EV_EFI_RUNTIME_SERVICES_DRIVER = 0x80000005;
const EV_EFI_GPT_EVENT = 0x80000006;
const EV_EFI_ACTION = 0x80000007;
const EV_EFI_PLATFORM_FIRMWARE_BLOB = 0x80000008;
const EV_EFI_PLATFORM_FIRMWARE_BLOB2 = 0x8000000a;
const EV_EFI_VARIABLE_BOOT2 = 0x8000000c;
const EV_EFI_HCRTM_EVENT = 0x80000010;
const EV_EFI_VARIABLE_AUTHORITY = 0x800000e0;

export function yamlHeader(): string {
  return HEADER;
}

/** Characters yaml's stringifier leaves raw that YAML 1.1/1.2 parsers reject or read as line breaks. */
const NOT_PRINTABLE = /[\x7f-\x9f\u2028\u2029\ufeff\ufffe\uffff]/g;

function escapeChar(c: string): string {
  const code = c.charCodeAt(0);
  if (code === 0x85) return '\\N';
  if (code === 0x2028) return '\\L';
  if (code === 0x2029) return '\\P';
  return code <= 0xff ? `\\x${code.toString(16).padStart(2, '0')}` : `\\u${code.toString(16).padStart(4, '0')}`;
}

/** JSON's \u00XX escapes that YAML writes differently (yaml's stringifyString does this mapping). */
const YAML_SHORT_ESCAPES: Readonly<Record<string, string>> = { '0000': '\\0', '0007': '\\a', '000b': '\\v', '001b': '\\e' };

let onlyAscii = true;

/** True while every string rendered so far is ASCII, so the output may be encoded as Latin-1 (faster). */
export function renderedOnlyAscii(): boolean {
  return onlyAscii;
}

/**
 * A one-line YAML double-quoted scalar holding exactly `s`, as the `yaml` library's scalar
 * stringifier writes it (implicit-key mode, so it never folds across lines), with the few characters
 * yaml leaves raw that are not YAML-printable escaped as well. ASCII strings (nearly all of an event
 * log) take a shortcut that gives yaml's exact output (a property test compares both byte for byte):
 * yaml quotes by JSON.stringify plus YAML's short escapes for \0 \a \v \e, \xXX for other control
 * characters and an escaped space before an escaped newline. Other strings load yaml on first use (it costs ~60 ms of start-up) and go through it.
 */
export function yamlString(s: string): string {
  // One scan (a charCodeAt loop measured faster than regular expressions on these short strings).
  let ascii = true;
  let simple = true;
  let nul = false;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c > 0x7e) {
      ascii = false;
      break;
    }
    if (c === 0) nul = true;
    else if (c < 0x20 || c === 0x22 || c === 0x5c) simple = false;
  }
  if (!ascii) return yamlStringByYaml(s);
  // grub's strings end with a NUL: JSON's \u0000 is yaml's \0.
  if (simple) return nul ? `"${s.replaceAll('\0', '\\0')}"` : `"${s}"`;
  // Escape pairs are consumed left to right, so a match never starts inside one; like yaml, a space
  // before an escaped newline is escaped too.
  return JSON.stringify(s).replace(/\\u00([0-9a-f]{2})|\\.| (?=\\n)/g, (m: string, code: string | undefined) =>
    code !== undefined ? (YAML_SHORT_ESCAPES[`00${code}`] ?? `\\x${code}`) : m === ' ' ? '\\ ' : m,
  );
}

let yamlCst: typeof CST | undefined;

/** yaml's scalar stringifier (the reference {@link yamlString} must equal), plus the extra escapes. */
export function yamlStringByYaml(s: string): string {
  // Loaded on first use: most logs are ASCII and never need it.
  yamlCst ??= (createRequire(import.meta.url)('yaml') as { CST: typeof CST }).CST;
  const token = yamlCst.createScalarToken(s, { type: 'QUOTE_DOUBLE', implicitKey: true, indent: 0 });
  const out = token.source.replace(NOT_PRINTABLE, escapeChar);
  if (onlyAscii && /[^\x00-\x7f]/.test(out)) onlyAscii = false;
  return out;
}

const wholeBuffers = new WeakMap<ArrayBufferLike, Buffer>();
let lastArrayBuffer: ArrayBufferLike | undefined;
let lastBuffer: Buffer | undefined;

/** A Buffer over the whole ArrayBuffer behind `b` (cached: every event of a log shares one). */
function bufferOf(b: Uint8Array): Buffer {
  if (b.buffer === lastArrayBuffer) return lastBuffer as Buffer;
  let buf = wholeBuffers.get(b.buffer);
  if (buf === undefined) {
    buf = Buffer.from(b.buffer);
    wholeBuffers.set(b.buffer, buf);
  }
  lastArrayBuffer = b.buffer;
  lastBuffer = buf;
  return buf;
}

function hex(b: Uint8Array): string {
  return bufferOf(b).toString('hex', b.byteOffset, b.byteOffset + b.byteLength);
}

/** Text of measured bytes: UTF-8 when they are valid UTF-8 (grub), else one character per byte. */
function text(b: Uint8Array): string {
  return bufferOf(b).toString(isUtf8(b) ? 'utf8' : 'latin1', b.byteOffset, b.byteOffset + b.byteLength);
}

function hexNum(n: bigint | number): string {
  return `0x${n.toString(16)}`;
}

/** The Spec ID Event03 header event (the first event of a crypto-agile log), as tpm2_eventlog prints it. */
export function renderSpecIdEvent(ev: RawEvent): string {
  const d = ev.data;
  let digest = '';
  forEachDigestHex(ev, (_alg, h) => (digest = h));
  let s = `- EventNum: ${ev.index}\n  PCRIndex: ${ev.pcr}\n  EventType: ${eventTypeName(ev.type)}\n  Digest: "${digest}"\n  EventSize: ${d.byteLength}\n`;
  // The parser has bounds-checked the header (parseEventLog), so these reads are in range.
  const v = new DataView(d.buffer, d.byteOffset, d.byteLength);
  const n = v.getUint32(24, true);
  s += `  SpecID:\n  - Signature: ${yamlString(text(d.subarray(0, 15)))}\n    platformClass: ${v.getUint32(16, true)}\n`;
  s += `    specVersionMinor: ${d[20]}\n    specVersionMajor: ${d[21]}\n    specErrata: ${d[22]}\n    uintnSize: ${d[23]}\n`;
  s += `    numberOfAlgorithms: ${n}\n    Algorithms:\n`;
  for (let i = 0; i < n; i++) {
    const id = v.getUint16(28 + i * 4, true);
    s += `    - Algorithm[${i}]:\n      algorithmId: ${algorithmName(id)}\n      digestSize: ${v.getUint16(30 + i * 4, true)}\n`;
  }
  const vendorSize = d[28 + n * 4] as number;
  s += `    vendorInfoSize: ${vendorSize}\n`;
  if (vendorSize > 0) s += `    vendorInfo: "${hex(d.subarray(29 + n * 4, 29 + n * 4 + vendorSize))}"\n`;
  return s;
}

function algorithmName(id: number): string {
  return ALGORITHM_NAMES.get(id) ?? `"0x${id.toString(16).padStart(4, '0')}"`;
}

/** One event of the `events` list (every event but a crypto-agile log's Spec ID header). */
export function renderEvent(ev: RawEvent): string {
  let count = 0;
  let digests = '';
  forEachDigestHex(ev, (alg, h) => {
    count++;
    digests += `  - AlgorithmId: ${algorithmName(alg)}\n    Digest: "${h}"\n`;
  });
  const data = ev.data;
  let s = `- EventNum: ${ev.index}\n  PCRIndex: ${ev.pcr}\n  EventType: ${eventTypeName(ev.type)}\n  DigestCount: ${count}\n`;
  s += count === 0 ? '  Digests: []\n' : `  Digests:\n${digests}`;
  s += `  EventSize: ${data.byteLength}\n`;
  if (data.byteLength === 0) return s;
  try {
    return s + renderData(ev.type, data);
  } catch (err) {
    // A structure that does not fit its event is shown as hex; the log itself parsed.
    if (!(err instanceof EventLogError)) throw err;
    return `${s}  Event: "${hex(data)}"\n`;
  }
}

function renderData(type: number, data: Uint8Array): string {
  switch (type) {
    case EV_IPL:
      return `  Event:\n    String: ${yamlString(text(data))}\n`;
    case EV_EFI_ACTION:
    case EV_EFI_HCRTM_EVENT:
      return `  Event: ${yamlString(text(data))}\n`;
    case EV_POST_CODE:
      return data.byteLength === 16 ? renderBlob(data, false) : `  Event: ${yamlString(text(data))}\n`;
    case EV_S_CRTM_CONTENTS:
    case EV_EFI_PLATFORM_FIRMWARE_BLOB:
      return renderBlob(data, false);
    case EV_EFI_PLATFORM_FIRMWARE_BLOB2:
      return renderBlob(data, true);
    case EV_EFI_VARIABLE_DRIVER_CONFIG:
    case EV_EFI_VARIABLE_BOOT:
    case EV_EFI_VARIABLE_BOOT2:
    case EV_EFI_VARIABLE_AUTHORITY:
      return renderVariable(type, data);
    case EV_EFI_BOOT_SERVICES_APPLICATION:
    case EV_EFI_BOOT_SERVICES_DRIVER:
    case EV_EFI_RUNTIME_SERVICES_DRIVER: {
      const img = decodeUnverifiedImageLoad(data);
      return (
        `  Event:\n    ImageLocationInMemory: ${hexNum(img.imageLocationInMemory)}\n    ImageLengthInMemory: ${img.imageLengthInMemory}\n` +
        `    ImageLinkTimeAddress: ${hexNum(img.imageLinkTimeAddress)}\n    LengthOfDevicePath: ${img.lengthOfDevicePath}\n    DevicePath: '${hex(img.devicePath)}'\n`
      );
    }
    case EV_EFI_GPT_EVENT:
      return renderGpt(data);
    case EV_NO_ACTION: {
      const locality = decodeUnverifiedStartupLocality(data);
      return locality === undefined ? `  Event: "${hex(data)}"\n` : `  Event:\n    StartupLocality: ${locality}\n`;
    }
    default:
      return `  Event: "${hex(data)}"\n`;
  }
}

function renderBlob(data: Uint8Array, withDescription: boolean): string {
  const b = decodeUnverifiedFirmwareBlob(data, withDescription);
  const desc = b.blobDescription === undefined ? '' : `    BlobDescriptionSize: ${b.blobDescription.byteLength}\n    BlobDescription: "${hex(b.blobDescription)}"\n`;
  return `  Event:\n${desc}    BlobBase: ${hexNum(b.blobBase)}\n    BlobLength: ${hexNum(b.blobLength)}\n`;
}

function renderGpt(data: Uint8Array): string {
  const { header: h, partitions } = decodeUnverifiedGptEvent(data);
  let s =
    `  Event:\n    Header:\n      Signature: ${yamlString(text(h.signature))}\n      Revision: ${hexNum(h.revision)}\n      HeaderSize: ${h.headerSize}\n` +
    `      HeaderCRC32: ${hexNum(h.headerCrc32)}\n      MyLBA: ${hexNum(h.myLba)}\n      AlternateLBA: ${hexNum(h.alternateLba)}\n` +
    `      FirstUsableLBA: ${hexNum(h.firstUsableLba)}\n      LastUsableLBA: ${hexNum(h.lastUsableLba)}\n      DiskGUID: ${h.diskGuid}\n` +
    `      PartitionEntryLBA: ${hexNum(h.partitionEntryLba)}\n      NumberOfPartitionEntry: ${h.numberOfPartitionEntries}\n` +
    `      SizeOfPartitionEntry: ${h.sizeOfPartitionEntry}\n      PartitionEntryArrayCRC32: ${hexNum(h.partitionEntryArrayCrc32)}\n` +
    `    NumberOfPartitions: ${partitions.length}\n`;
  s += partitions.length === 0 ? '    Partitions: []\n' : '    Partitions:\n';
  for (const p of partitions) {
    s +=
      `    - PartitionTypeGUID: ${p.partitionTypeGuid}\n      UniquePartitionGUID: ${p.uniquePartitionGuid}\n      StartingLBA: ${hexNum(p.startingLba)}\n` +
      `      EndingLBA: ${hexNum(p.endingLba)}\n      Attributes: ${hexNum(p.attributes)}\n      PartitionName: ${yamlString(p.partitionName)}\n`;
  }
  return s;
}

const SIGNATURE_DB_NAMES = new Set(['PK', 'KEK', 'db', 'dbx']);

function renderVariable(type: number, data: Uint8Array): string {
  const u = decodeUnverifiedUefiVariable(data);
  const name = u.unicodeName;
  const head =
    `  Event:\n    VariableName: ${u.variableGuid}\n    UnicodeNameLength: ${u.unicodeNameLength}\n` +
    `    VariableDataLength: ${u.variableDataLength}\n    UnicodeName: ${yamlString(u.unicodeName)}\n`;
  const value = u.variableData;
  try {
    return variableValue(type, name, head, value);
  } catch (err) {
    // VariableData that does not parse as its variable's structure is shown as hex.
    if (!(err instanceof EventLogError)) throw err;
    return `${head}    VariableData: "${hex(value)}"\n`;
  }
}

function variableValue(type: number, name: string, head: string, value: Uint8Array): string {
  if (type === EV_EFI_VARIABLE_DRIVER_CONFIG && SIGNATURE_DB_NAMES.has(name)) {
    const lists = decodeUnverifiedSignatureLists(value);
    if (lists.length === 0) return `${head}    VariableData: []\n`;
    let s = `${head}    VariableData:\n`;
    for (const l of lists) {
      s += `    - SignatureType: ${l.signatureType}\n      SignatureListSize: ${l.signatureListSize}\n      SignatureHeaderSize: ${l.signatureHeaderSize}\n      SignatureSize: ${l.signatureSize}\n`;
      s += l.signatures.length === 0 ? '      Keys: []\n' : '      Keys:\n';
      for (const k of l.signatures) s += `      - SignatureOwner: ${k.owner}\n        SignatureData: "${hex(k.data)}"\n`;
    }
    return s;
  }
  if ((type === EV_EFI_VARIABLE_DRIVER_CONFIG && name === 'SecureBoot') || (type === EV_EFI_VARIABLE_AUTHORITY && name === 'MokListTrusted')) {
    if (value.byteLength > 1) return `${head}    VariableData: "${hex(value)}"\n`;
    return `${head}    VariableData:\n      Enabled: ${value.byteLength === 1 && value[0] !== 0 ? "'Yes'" : "'No'"}\n`;
  }
  if (type === EV_EFI_VARIABLE_AUTHORITY && (name === 'db' || name === 'Shim')) {
    if (value.byteLength < 16) return `${head}    VariableData: "${hex(value)}"\n`;
    return `${head}    VariableData:\n    - SignatureOwner: ${formatGuid(value.subarray(0, 16))}\n      SignatureData: "${hex(value.subarray(16))}"\n`;
  }
  if (type === EV_EFI_VARIABLE_AUTHORITY && name === 'SbatLevel') {
    return `${head}    VariableData:\n      String: ${yamlString(text(value))}\n`;
  }
  if (type === EV_EFI_VARIABLE_BOOT || type === EV_EFI_VARIABLE_BOOT2) {
    if (name === 'BootOrder' && value.byteLength % 2 === 0) {
      if (value.byteLength === 0) return `${head}    VariableData: []\n`;
      let s = `${head}    VariableData:\n`;
      for (let i = 0; i < value.byteLength; i += 2) s += `    - Boot${((value[i] as number) | ((value[i + 1] as number) << 8)).toString(16).padStart(4, '0')}\n`;
      return s;
    }
    if (/^Boot[0-9A-Fa-f]{4}$/.test(name)) {
      const o = decodeUnverifiedLoadOption(value);
      return (
        `${head}    VariableData:\n      Enabled: ${(o.attributes & 1) === 1 ? "'Yes'" : "'No'"}\n      FilePathListLength: ${o.filePathListLength}\n` +
        `      Description: ${yamlString(o.description)}\n      DevicePath: '${hex(o.devicePath)}'\n`
      );
    }
  }
  return value.byteLength === 0 ? head : `${head}    VariableData: "${hex(value)}"\n`;
}

/** The `pcrs:` section: each bank that replayed, its PCRs in ascending order, indices left-aligned. */
export function renderPcrs(replays: ReadonlyMap<EventLogBank, BankReplay>): string {
  let s = '';
  for (const [bank, r] of replays) {
    if (!r.ok) continue;
    if (r.pcrs.size === 0) {
      s += `  ${bank}: {}\n`;
      continue;
    }
    s += `  ${bank}:\n`;
    for (const pcr of [...r.pcrs.keys()].sort((a, b) => a - b)) s += `    ${String(pcr).padEnd(2)} : 0x${hex(r.pcrs.get(pcr) as Uint8Array)}\n`;
  }
  return s === '' ? 'pcrs: {}\n' : `pcrs:\n${s}`;
}
