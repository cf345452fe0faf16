import { EventLogError } from './errors.js';
import { formatGuid } from './efi-variable.js';

/** UEFI_IMAGE_LOAD_EVENT (TCG PC Client PFP 10.2.3) with the device path rendered as text. */
export interface EfiImageLoad {
  readonly imageLength: bigint;
  readonly devicePath: string;
}

const MAX_DEVICE_PATH_NODES = 64;

export function parseEfiImageLoad(data: Uint8Array): EfiImageLoad {
  // SECURITY: fixed header and device-path length are checked against the event size (oversized length fields).
  if (data.byteLength < 32) throw new EventLogError('EVENTLOG_MALFORMED', 'UEFI_IMAGE_LOAD_EVENT is truncated');
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  const pathLength = view.getBigUint64(24, true);
  if (pathLength > BigInt(data.byteLength - 32)) {
    throw new EventLogError('EVENTLOG_MALFORMED', 'UEFI_IMAGE_LOAD_EVENT device path exceeds the event');
  }
  return {
    imageLength: view.getBigUint64(8, true),
    devicePath: renderDevicePath(data.subarray(32, 32 + Number(pathLength))),
  };
}

/** Renders an EFI device path in the UEFI text style for the node types boot logs use. */
export function renderDevicePath(path: Uint8Array): string {
  const view = new DataView(path.buffer, path.byteOffset, path.byteLength);
  const parts: string[] = [];
  let offset = 0;
  while (offset + 4 <= path.byteLength && parts.length < MAX_DEVICE_PATH_NODES) {
    const type = path[offset] as number;
    const subtype = path[offset + 1] as number;
    const length = view.getUint16(offset + 2, true);
    // SECURITY: a node length below its header or past the end would loop forever or read out of bounds.
    if (length < 4 || length > path.byteLength - offset) {
      throw new EventLogError('EVENTLOG_MALFORMED', 'device path node length is invalid');
    }
    const body = path.subarray(offset + 4, offset + length);
    if (type === 0x7f) break;
    parts.push(renderNode(type, subtype, body));
    offset += length;
  }
  return parts.join('/');
}

function renderNode(type: number, subtype: number, body: Uint8Array): string {
  const view = new DataView(body.buffer, body.byteOffset, body.byteLength);
  if (type === 4 && subtype === 4) return Buffer.from(body).toString('utf16le').replace(/\0+$/, '');
  if (type === 4 && subtype === 1 && body.byteLength >= 38) {
    return `HD(${view.getUint32(0, true)},${body[37] === 2 ? 'GPT' : 'MBR'},${body[37] === 2 ? formatGuid(body.subarray(20, 36)) : ''})`;
  }
  if (type === 4 && (subtype === 6 || subtype === 7) && body.byteLength >= 16) {
    return `${subtype === 6 ? 'FvFile' : 'Fv'}(${formatGuid(body.subarray(0, 16))})`;
  }
  if (type === 1 && subtype === 1 && body.byteLength >= 2) return `Pci(0x${(body[1] as number).toString(16)},0x${(body[0] as number).toString(16)})`;
  if (type === 2 && subtype === 1 && body.byteLength >= 8) return `Acpi(0x${view.getUint32(0, true).toString(16)},0x${view.getUint32(4, true).toString(16)})`;
  return `Path(${type},${subtype},${Buffer.from(body).toString('hex')})`;
}
