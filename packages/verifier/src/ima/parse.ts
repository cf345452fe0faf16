import { hash } from 'node:crypto';
import { EventLogError } from '../eventlog/errors.js';

export type ImaTemplateName = 'ima' | 'ima-ng' | 'ima-sig' | 'ima-buf';

/** One line of `ascii_runtime_measurements`, with the template data rebuilt from its fields. */
export interface ImaEntry {
  /** Absolute position in the measurement list (0 = boot_aggregate). */
  readonly index: number;
  readonly pcr: number;
  /** The template hash as logged, lower-case hex (SHA-1 on current kernels; its length names the algorithm). */
  readonly templateHashHex: string;
  readonly templateName: ImaTemplateName;
  /** Algorithm of the file or buffer digest (`sha1` for the legacy `ima` template). */
  readonly digestAlgorithm: string;
  /** The file or buffer digest, lower-case hex. */
  readonly digestHex: string;
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
  const pcr = Number(pcrText);
  if (s1 < 1 || s1 > 2 || !Number.isInteger(pcr) || pcr > 23 || !/^\d+$/.test(pcrText)) throw bad('invalid PCR');
  const templateHashHex = line.slice(s1 + 1, s2).toLowerCase();
  const hashAlg = TEMPLATE_HASH_ALGS.get(templateHashHex.length / 2);
  // SECURITY: a template hash that is not hex of a known length cannot be checked (ima_template.c).
  if (hashAlg === undefined || !isHex(templateHashHex)) throw bad('invalid template hash');
  const templateName = line.slice(s2 + 1, s3);
  const digestField = line.slice(s3 + 1, s4);
  const rest = line.slice(s4 + 1);

  let templateData: Buffer;
  let digestAlgorithm: string;
  let digestHex: string;
  let path: string;
  let signature: Uint8Array | undefined;
  let buffer: Uint8Array | undefined;
  if (templateName === 'ima') {
    digestAlgorithm = 'sha1';
    digestHex = digestField.toLowerCase();
    path = rest;
    const nameLength = Buffer.byteLength(path, 'utf8');
    // SECURITY: the legacy template holds a bare SHA-1 and a name of at most 255 bytes (ima_template_lib.c).
    if (digestHex.length !== 40) throw bad('invalid digest');
    if (nameLength >= LEGACY_NAME_FIELD) throw bad('name too long for the ima template');
    templateData = Buffer.alloc(20 + LEGACY_NAME_FIELD);
    if (templateData.write(digestHex, 0, 'hex') !== 20) throw bad('invalid digest');
    templateData.write(path, 20, 'utf8');
  } else if (templateName === 'ima-ng' || templateName === 'ima-sig' || templateName === 'ima-buf') {
    const colon = digestField.indexOf(':');
    digestAlgorithm = digestField.slice(0, colon);
    digestHex = digestField.slice(colon + 1).toLowerCase();
    // SECURITY: a d-ng field must be `<known alg>:<hex>`; anything else would serialize ambiguously (ima_template_lib.c).
    if (colon < 1 || digestHex.length === 0 || digestHex.length % 2 !== 0 || !DIGEST_ALGS.has(digestAlgorithm)) throw bad('invalid digest');
    const digestLength = digestHex.length / 2;
    let tailHex = '';
    if (templateName === 'ima-ng') {
      path = rest;
    } else {
      // The last field (signature or buffer) has no spaces; the name before it may (kernel prints names raw).
      const last = rest.lastIndexOf(' ');
      if (last < 0) throw bad('missing field');
      path = rest.slice(0, last);
      tailHex = rest.slice(last + 1);
      if (tailHex.length % 2 !== 0) throw bad('invalid hex field');
    }
    const tailLength = tailHex.length / 2;
    // d-ng: u32 len | "<alg>:\0" | digest; n-ng: u32 len | name \0; sig/buf: u32 len | bytes (little-endian lengths).
    const algLength = digestAlgorithm.length + 2;
    const nameLength = Buffer.byteLength(path, 'utf8');
    const total = 4 + algLength + digestLength + 4 + nameLength + 1 + (templateName === 'ima-ng' ? 0 : 4 + tailLength);
    templateData = Buffer.allocUnsafe(total);
    let o = templateData.writeUInt32LE(algLength + digestLength, 0);
    o += templateData.write(digestAlgorithm, o, 'latin1');
    templateData[o++] = 0x3a;
    templateData[o++] = 0;
    // Buffer#write stops at the first non-hex pair, so a short count means invalid hex.
    if (templateData.write(digestHex, o, 'hex') !== digestLength) throw bad('invalid digest');
    o += digestLength;
    o = templateData.writeUInt32LE(nameLength + 1, o);
    o += templateData.write(path, o, 'utf8');
    templateData[o++] = 0;
    if (templateName !== 'ima-ng') {
      o = templateData.writeUInt32LE(tailLength, o);
      if (tailLength > 0 && templateData.write(tailHex, o, 'hex') !== tailLength) throw bad('invalid hex field');
      const tail = templateData.subarray(o, o + tailLength);
      if (templateName === 'ima-sig') signature = tailLength > 0 ? tail : undefined;
      else buffer = tail;
    }
  } else {
    // SECURITY: an unknown template cannot be rebuilt, so its hash could not be checked (ima_template.c).
    throw bad('unsupported template');
  }
  const violation = ZERO_HASHES.has(templateHashHex);
  // SECURITY: the template hash must be the hash of the fields shown, or the fields are forged (IMA-templates.rst).
  if (!violation && hash(hashAlg, templateData, 'hex') !== templateHashHex) {
    throw new EventLogError('IMA_TEMPLATE_HASH_MISMATCH', `IMA entry ${index}: template hash does not match its fields`);
  }
  return { index, pcr, templateHashHex, templateName, digestAlgorithm, digestHex, path, signature, buffer, violation, templateData };
}

const ZERO_HASHES = new Set([...TEMPLATE_HASH_ALGS.keys()].map((n) => '0'.repeat(n * 2)));

function isHex(text: string): boolean {
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (!((c >= 0x30 && c <= 0x39) || (c >= 0x61 && c <= 0x66))) return false;
  }
  return true;
}
