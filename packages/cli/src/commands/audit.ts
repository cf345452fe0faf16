import { readFile, stat } from 'node:fs/promises';
import { parseArgs } from 'node:util';
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
import { AdminCallError, DEFAULT_KBS_URL, adminCall, readAdminToken } from '../kbs-admin-client.js';
import { EXIT, type CommandIo } from '../command.js';

const USAGE = `Usage:
  keyhold audit (--file FILE | --url URL --admin-token-file FILE) [--since TIME|SEQ|DURATION] [--node NODE]
                [--kind auth|attest|release|deny|admin] [--verify] [--json]
      Reads the KBS audit trail: a JSON-lines log file, or GET <URL>/kbs/v0/audit with an admin token.
      --since takes an RFC 3339 time, a record seq, or a duration back from now (30m, 24h, 7d).
      --verify checks the hash chain of the whole log first (edited, removed, reordered records,
      damaged lines, a torn last line) and names the first bad seq.
      Exit status: 0 ok, 1 chain verification failed, 2 usage or read error.`;

const UNIT_MS: Record<string, number> = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

class UsageError extends Error {}

function parseSince(text: string, now: Date): Pick<AuditQuery, 'since' | 'sinceSeq'> {
  if (/^[1-9][0-9]{0,15}$/.test(text)) return { sinceSeq: Number(text) };
  const d = /^([1-9][0-9]{0,6})([smhd])$/.exec(text);
  if (d !== null) return { since: new Date(now.getTime() - Number(d[1]) * (UNIT_MS[d[2] as string] ?? 0)) };
  const t = Date.parse(text);
  if (/^\d{4}-\d{2}-\d{2}/.test(text) && !Number.isNaN(t)) return { since: new Date(t) };
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

export async function run(argv: string[], io: CommandIo, now: () => Date = () => new Date()): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      options: {
        file: { type: 'string' },
        url: { type: 'string' },
        'admin-token-file': { type: 'string' },
        since: { type: 'string' },
        node: { type: 'string' },
        kind: { type: 'string' },
        verify: { type: 'boolean' },
        json: { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
      },
      strict: true,
    }));
  } catch (err) {
    io.stderr.write(`keyhold audit: ${(err as Error).message}\n${USAGE}\n`);
    return EXIT.USAGE;
  }
  if (values.help === true) {
    io.stdout.write(`${USAGE}\n`);
    return EXIT.OK;
  }
  try {
    if ((values.file === undefined) === (values.url === undefined)) throw new UsageError('give exactly one of --file or --url');
    if (values.kind !== undefined && !(AUDIT_KINDS as readonly string[]).includes(values.kind)) throw new UsageError(`--kind must be one of ${AUDIT_KINDS.join(', ')}`);
    const query: AuditQuery = {
      ...(values.since === undefined ? {} : parseSince(values.since, now())),
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
      const token = await readAdminToken(values['admin-token-file']);
      const base = values.url ?? DEFAULT_KBS_URL;
      // With --verify the whole log is fetched and filtered here, so the chain can be checked.
      const params = new URLSearchParams();
      if (values.verify !== true) {
        if (query.sinceSeq !== undefined) params.set('sinceSeq', String(query.sinceSeq));
        if (query.since !== undefined) params.set('since', query.since.toISOString());
        if (query.node !== undefined) params.set('node', query.node);
        if (query.kind !== undefined) params.set('kind', query.kind);
      }
      const qs = params.toString();
      log = logFromResponse(await adminCall(base, token, 'GET', `/kbs/v0/audit${qs === '' ? '' : `?${qs}`}`));
      partial = values.verify !== true;
    }
    const verification = values.verify === true ? verifyParsedAuditLog(log, { allowSuffix: partial }) : undefined;
    const records = filterAuditRecords(log.records, query);
    if (values.json === true) {
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
    const msg = err instanceof UsageError || err instanceof AdminCallError || err instanceof Error ? err.message : String(err);
    io.stderr.write(`keyhold audit: ${msg}\n`);
    return EXIT.USAGE;
  }
}
