import { hash } from 'node:crypto';
import { EventLogError } from '../eventlog/errors.js';

export type ImaTemplateName = 'ima' | 'ima-ng' | 'ima-sig' | 'ima-buf';

/** One line of `ascii_runtime_measurements`, with the template data rebuilt from its fields. */
export interface ImaEntry {
  /** Absolute position in the measurement list (0 = boot_aggregate). */
  readonly index: number;
  readonly pcr: number;
  /** The template hash as logged (SHA-1 on current kernels; its length names the algorithm). */
  readonly templateHash: Uint8Array;
  readonly templateName: ImaTemplateName;
  /** Algorithm of the file or buffer digest (`sha1` for the legacy `ima` template). */
  readonly digestAlgorithm: string;
  readonly digest: Uint8Array;
  /** File path, or the buffer name (keyring, dm target) for ima-buf. */
  readonly path: string;
  readonly signature: Uint8Array | undefined;
  readonly buffer: Uint8Array | undefined;
  /** All-zero template hash: a ToMToU or open-writers violation (ima_main.c). Extended as all-0xFF. */
  readonly violation: boolean;
  /** The serialized template data the kernel hashed (ima_template_lib.c). */
  readonly templateData: Uint8Array;
}

export interface ParseImaLogOptions {
  /** Absolute index of the first line (for a log tail sent after a checkpoint). Default 0. */
  readonly firstIndex?: number;
  /** Upper bound on entries; default 2,000,000. */
  readonly maxEntries?: number;
}

const TEMPLATE_HASH_ALGS = new Map<number, string>([
  [20, 'sha1'],
  [32, 'sha256'],
  [48, 'sha384'],
  [64, 'sha512'],
]);
const DIGEST_ALGS = new Set(['md5', 'sha1', 'sha224', 'sha256', 'sha384', 'sha512', 'sm3', 'sm3-256', 'streebog256', 'streebog512', 'wp512', 'rmd160']);
const MAX_LINE_CHARS = 1 << 20;
const LEGACY_NAME_FIELD = 256; // IMA_EVENT_NAME_LEN_MAX + 1
const HEX = /^(?:[0-9a-f]{2})*$/;

/**
 * Parses an IMA ASCII measurement list (templates ima, ima-ng, ima-sig, ima-buf), rebuilds each
 * entry's template data and checks the logged template hash against it. Throws IMA_MALFORMED or
 * IMA_TEMPLATE_HASH_MISMATCH naming the line. The result is unverified until replayed against a
 * quoted PCR (`verifyImaAgainstQuote`).
 */
export function parseImaLog(text: string, options: ParseImaLogOptions = {}): ImaEntry[] {
  const firstIndex = options.firstIndex ?? 0;
  const maxEntries = options.maxEntries ?? 2_000_000;
  if (!Number.isSafeInteger(firstIndex) || firstIndex < 0) throw new TypeError('firstIndex must be a non-negative integer');
  const entries: ImaEntry[] = [];
  let start = 0;
  while (start < text.length) {
    let end = text.indexOf('\n', start);
    if (end === -1) end = text.length;
    const line = text.slice(start, end);
    start = end + 1;
    if (line.length === 0) continue;
    // SECURITY: bound entries and line length so a hostile log cannot exhaust memory (denial of service).
    if (entries.length >= maxEntries) throw new EventLogError('IMA_MALFORMED', `IMA log has more than ${maxEntries} entries`);
    if (line.length > MAX_LINE_CHARS) throw new EventLogError('IMA_MALFORMED', `IMA entry ${firstIndex + entries.length} is too long`);
    entries.push(parseLine(line, firstIndex + entries.length));
  }
  return entries;
}

function parseLine(line: string, index: number): ImaEntry {
  const bad = (what: string): EventLogError => new EventLogError('IMA_MALFORMED', `IMA entry ${index}: ${what}`);
  const s1 = line.indexOf(' ');
  const s2 = s1 < 0 ? -1 : line.indexOf(' ', s1 + 1);
  const s3 = s2 < 0 ? -1 : line.indexOf(' ', s2 + 1);
  const s4 = s3 < 0 ? -1 : line.indexOf(' ', s3 + 1);
  // SECURITY: every entry needs PCR, template hash, template name, digest and name; a short line is forged or truncated.
  if (s4 < 0) throw bad('too few fields');
  const pcrText = line.slice(0, s1);
  if (!/^\d{1,2}$/.test(pcrText)) throw bad('invalid PCR');
  const templateHashHex = line.slice(s1 + 1, s2);
  const hashAlg = TEMPLATE_HASH_ALGS.get(templateHashHex.length / 2);
  // SECURITY: a template hash of unknown length cannot be checked (ima_template.c).
  if (hashAlg === undefined || !HEX.test(templateHashHex)) throw bad('invalid template hash');
  const templateHash = Buffer.from(templateHashHex, 'hex');
  const templateName = line.slice(s2 + 1, s3);
  const digestField = line.slice(s3 + 1, s4);
  const rest = line.slice(s4 + 1);

  let digestAlgorithm: string;
  let digestHex: string;
  let path: string;
  let signature: Uint8Array | undefined;
  let buffer: Uint8Array | undefined;
  const parts: Uint8Array[] = [];
  if (templateName === 'ima') {
    digestAlgorithm = 'sha1';
    digestHex = digestField;
    path = rest;
    // SECURITY: the legacy template holds a bare SHA-1 and a name of at most 255 bytes (ima_template_lib.c).
    if (digestHex.length !== 40 || !HEX.test(digestHex)) throw bad('invalid digest');
    const name = Buffer.from(path, 'utf8');
    if (name.byteLength >= LEGACY_NAME_FIELD) throw bad('name too long for the ima template');
    const nameField = Buffer.alloc(LEGACY_NAME_FIELD);
    name.copy(nameField);
    parts.push(Buffer.from(digestHex, 'hex'), nameField);
  } else if (templateName === 'ima-ng' || templateName === 'ima-sig' || templateName === 'ima-buf') {
    const colon = digestField.indexOf(':');
    digestAlgorithm = digestField.slice(0, colon);
    digestHex = digestField.slice(colon + 1);
    // SECURITY: a d-ng field must be `<known alg>:<hex>`; anything else would serialize ambiguously (ima_template_lib.c).
    if (colon < 1 || !DIGEST_ALGS.has(digestAlgorithm) || digestHex.length === 0 || !HEX.test(digestHex)) throw bad('invalid digest');
    const digestBytes = Buffer.from(digestHex, 'hex');
    const alg = Buffer.from(`${digestAlgorithm}:\0`, 'latin1');
    parts.push(u32(alg.byteLength + digestBytes.byteLength), alg, digestBytes);
    if (templateName === 'ima-ng') {
      path = rest;
    } else {
      // The last field (signature or buffer) has no spaces; the name before it may (kernel prints names raw).
      const last = rest.lastIndexOf(' ');
      if (last < 0) throw bad('missing field');
      path = rest.slice(0, last);
      const tailHex = rest.slice(last + 1);
      if (!HEX.test(tailHex)) throw bad('invalid hex field');
      const tail = Buffer.from(tailHex, 'hex');
      if (templateName === 'ima-sig') signature = tail.byteLength > 0 ? tail : undefined;
      else buffer = tail;
    }
    const name = Buffer.from(path, 'utf8');
    parts.push(u32(name.byteLength + 1), name, Buffer.alloc(1));
    if (templateName !== 'ima-ng') {
      const tail = (templateName === 'ima-sig' ? signature : buffer) ?? new Uint8Array(0);
      parts.push(u32(tail.byteLength), tail);
    }
  } else {
    // SECURITY: an unknown template cannot be rebuilt, so its hash could not be checked (ima_template.c).
    throw bad('unsupported template');
  }
  const templateData = Buffer.concat(parts);
  const violation = templateHash.every((b) => b === 0);
  // SECURITY: the template hash must be the hash of the fields shown, or the fields are forged (IMA-templates.rst).
  if (!violation && !hash(hashAlg, templateData, 'buffer').equals(templateHash)) {
    throw new EventLogError('IMA_TEMPLATE_HASH_MISMATCH', `IMA entry ${index}: template hash does not match its fields`);
  }
  return {
    index,
    pcr: Number(pcrText),
    templateHash,
    templateName,
    digestAlgorithm,
    digest: Buffer.from(digestHex, 'hex'),
    path,
    signature,
    buffer,
    violation,
    templateData,
  };
}

function u32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(n, 0);
  return b;
}
