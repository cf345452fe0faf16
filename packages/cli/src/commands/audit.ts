import { readFile, stat } from 'node:fs/promises';
import { CliError, describeFileError, UsageError } from '@keyhold/command-line';
import {
  AUDIT_KINDS,
  MAX_AUDIT_LOG_CHARS,
  decodeUnverifiedAuditRecord,
  filterAuditRecords,
  parseAuditLog,
  verifyParsedAuditLog,
  type AuditKind,
  type AuditQuery,
  type AuditRecord,
  type ParsedAuditLog,
} from '@keyhold/audit';
import { EXIT } from '../command.js';
import { parseDurationMs } from '../duration.js';
import type { KeyholdRun } from '../keyhold-run.js';

function parseSince(text: string, now: Date): Pick<AuditQuery, 'since' | 'sinceSeq'> {
  if (/^[1-9][0-9]{0,15}$/.test(text)) return { sinceSeq: Number(text) };
  const t = Date.parse(text);
  if (/^\d{4}-\d{2}-\d{2}/.test(text) && !Number.isNaN(t)) return { since: new Date(t) };
  const back = parseDurationMs(text);
  if (back !== undefined) return { since: new Date(now.getTime() - back) };
  throw new UsageError(`--since ${text}: expected an RFC 3339 time, a seq or a duration like 24h`);
}

/** Records from a KBS answer: `{"records":[...]}`, a JSON array, or JSON-lines text. */
function logFromResponse(body: unknown): ParsedAuditLog {
  if (typeof body === 'string') return parseAuditLog(body.endsWith('\n') ? body : `${body}\n`);
  const list = Array.isArray(body) ? body : typeof body === 'object' && body !== null && Array.isArray((body as { records?: unknown }).records) ? (body as { records: unknown[] }).records : undefined;
  if (list === undefined) throw new UsageError('the KBS answer is not an audit record list');
  const records: AuditRecord[] = [];
  const badLines: { line: number; reason: string }[] = [];
  for (const [i, r] of list.entries()) {
    try {
      records.push(decodeUnverifiedAuditRecord(r));
    } catch (err) {
      badLines.push({ line: i + 1, reason: (err as Error).message });
    }
  }
  return { records, badLines };
}

function formatRecord(r: AuditRecord): string {
  const fields = Object.entries(r.fields)
    .map(([k, v]) => `${k}=${JSON.stringify(v)}`)
    .join(' ');
  return `${r.seq}\t${r.time}\t${r.kind}\t${fields}`;
}

/**
 * `keyhold audit`: read the KBS audit trail — a JSON-lines log file (--file), or GET
 * <URL>/kbs/v0/audit with an admin token — filter it, and with --verify check the hash chain of
 * the whole log first (edited, removed, reordered records, damaged lines, a torn last line),
 * naming the first bad seq. Exit 0 ok, 1 chain verification failed, 2 usage or read error.
 */
export async function audit(values: { file?: string; since?: string; node?: string; kind?: string; verify?: boolean }, run: KeyholdRun): Promise<number> {
  const io = run.io;
  const json = run.json;
  try {
    if (values.file !== undefined && run.flags().url !== undefined) throw new UsageError('give --file or --url, not both');
    if (values.kind !== undefined && !(AUDIT_KINDS as readonly string[]).includes(values.kind)) throw new UsageError(`--kind must be one of ${AUDIT_KINDS.join(', ')}`);
    const query: AuditQuery = {
      ...(values.since === undefined ? {} : parseSince(values.since, run.now())),
      ...(values.node === undefined ? {} : { node: values.node }),
      ...(values.kind === undefined ? {} : { kind: values.kind as AuditKind }),
    };
    let log: ParsedAuditLog;
    let partial = false;
    if (values.file !== undefined) {
      const st = await stat(values.file);
      if (st.size > MAX_AUDIT_LOG_CHARS) throw new UsageError(`${values.file} is too large to read at once`);
      log = parseAuditLog(await readFile(values.file, 'utf8'));
    } else {
      // With --verify the whole log is fetched and filtered here, so the chain can be checked.
      const params = new URLSearchParams();
      if (values.verify !== true) {
        if (query.sinceSeq !== undefined) params.set('sinceSeq', String(query.sinceSeq));
        if (query.since !== undefined) params.set('since', query.since.toISOString());
        if (query.node !== undefined) params.set('node', query.node);
        if (query.kind !== undefined) params.set('kind', query.kind);
      }
      const qs = params.toString();
      log = logFromResponse(await (await run.admin()).call('GET', `/kbs/v0/audit${qs === '' ? '' : `?${qs}`}`));
      partial = values.verify !== true;
    }
    const verification = values.verify === true ? verifyParsedAuditLog(log, { allowSuffix: partial }) : undefined;
    const records = filterAuditRecords(log.records, query);
    if (json) {
      io.stdout.write(`${JSON.stringify(verification === undefined ? { records } : { records, verification })}\n`);
    } else {
      for (const r of records) io.stdout.write(`${formatRecord(r)}\n`);
      if (verification?.ok === true) io.stderr.write(`chain ok: ${verification.count} records, head seq ${verification.lastSeq} hash ${verification.lastHash}\n`);
    }
    if (verification !== undefined && !verification.ok) {
      io.stderr.write(`keyhold audit: chain verification FAILED at seq ${verification.firstBadSeq}: ${verification.reason}\n`);
      return EXIT.FAIL;
    }
    if (verification === undefined && (log.badLines.length > 0 || log.tornTail !== undefined)) {
      io.stderr.write(`warning: ${log.badLines.length} damaged line(s)${log.tornTail === undefined ? '' : ' and a torn last line'}; run with --verify\n`);
    }
    return EXIT.OK;
  } catch (err) {
    // Reading errors keep the documented exit 2 (a refused or failed admin call keeps its own code).
    if (err instanceof CliError) throw err;
    const file = describeFileError(err);
    if (file !== undefined) throw new CliError(file.code, file.message, { exitCode: EXIT.USAGE, cause: err });
    throw err;
  }
}
