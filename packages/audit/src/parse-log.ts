import { AuditFormatError } from './errors.js';
import { decodeUnverifiedAuditRecord, type AuditRecord } from './record.js';

export interface ParsedAuditLog {
  /** Records from complete, well-formed lines, in file order (not yet chain-verified). */
  readonly records: readonly AuditRecord[];
  /** Complete lines that are not valid records (corruption or tampering), 1-based line numbers. */
  readonly badLines: readonly { readonly line: number; readonly reason: string }[];
  /** A last line without its newline: an append torn by a crash (or a truncation). */
  readonly tornTail?: { readonly line: number; readonly bytes: number };
}

export const MAX_AUDIT_LINE_CHARS = 64 * 1024;
export const MAX_AUDIT_LOG_CHARS = 512 * 1024 * 1024;

/**
 * Parse JSON-lines audit log text (one record per line, each line ending in `\n`). A final line
 * without `\n` is reported as `tornTail` and not parsed; every other bad line is in `badLines`.
 */
export function parseAuditLog(text: string): ParsedAuditLog {
  // SECURITY: bounded before splitting (memory exhaustion by a huge file or response).
  if (text.length > MAX_AUDIT_LOG_CHARS) throw new AuditFormatError('AUDIT_LOG_TOO_LARGE', 'audit log too large to read at once');
  const lines = text.split('\n');
  const last = lines.pop() ?? '';
  const records: AuditRecord[] = [];
  const badLines: { line: number; reason: string }[] = [];
  for (const [i, line] of lines.entries()) {
    if (line.length > MAX_AUDIT_LINE_CHARS) {
      badLines.push({ line: i + 1, reason: 'line too long' });
      continue;
    }
    try {
      records.push(decodeUnverifiedAuditRecord(JSON.parse(line)));
    } catch (err) {
      badLines.push({ line: i + 1, reason: err instanceof AuditFormatError ? err.message : 'not JSON' });
    }
  }
  if (last === '') return { records, badLines };
  return { records, badLines, tornTail: { line: lines.length + 1, bytes: Buffer.byteLength(last) } };
}

/** One record as a log line (JSON + `\n`). */
export function formatAuditLine(record: AuditRecord): string {
  return `${JSON.stringify(record)}\n`;
}
