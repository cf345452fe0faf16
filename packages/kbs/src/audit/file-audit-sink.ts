import { constants } from 'node:fs';
import { mkdir, open, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { MAX_AUDIT_LINE_CHARS, MAX_AUDIT_LOG_CHARS, decodeUnverifiedAuditRecord, formatAuditLine, parseAuditLog, type AuditRecord } from '@keyhold/audit';
import { AuditError } from './errors.js';
import type { AuditSink } from './sink.js';

export interface FileAuditSinkOptions {
  /** The JSON-lines log file, created 0600 when missing. */
  readonly file: string;
  /**
   * How long the first record of a batch waits for others before the batch is written (group
   * commit window). Longer windows mean fewer synchronous writes under load and that much more
   * latency per audited request; nothing resolves before its record is durable either way.
   */
  readonly groupCommitWindowMs?: number;
}

/** Two milliseconds: at a few hundred audited requests a second this groups several records per write. */
const DEFAULT_GROUP_COMMIT_WINDOW_MS = 2;

export interface FileAuditSink extends AuditSink {
  /** Bytes of a torn last line (crash mid-append) cut off at open, 0 when the file was clean. */
  readonly truncatedTornBytes: number;
}

/**
 * An append-only JSON-lines file. Each `append` resolves only once its lines are on stable storage:
 * the file is opened with O_DSYNC, so every write returns after its data (and the size change) is
 * durable, exactly as a write followed by fdatasync, in one thread-pool round trip instead of two.
 * Appends arriving while one is in flight are grouped into the next write (group commit), so
 * durability per record costs one synchronous write per batch. At open, a torn last line (no
 * trailing newline, left by a crash mid-write) is cut off so later lines stay aligned, and the
 * number of bytes cut is reported (the caller records it in the log itself).
 */
export async function openFileAuditSink(options: FileAuditSinkOptions): Promise<FileAuditSink> {
  const windowMs = options.groupCommitWindowMs ?? DEFAULT_GROUP_COMMIT_WINDOW_MS;
  if (!Number.isFinite(windowMs) || windowMs < 0 || windowMs > 1000) throw new TypeError('groupCommitWindowMs is a number of milliseconds in 0..1000');
  await mkdir(path.dirname(options.file), { recursive: true, mode: 0o700 });
  // 'a+' plus O_DSYNC: read/append/create, every write synchronised before it returns.
  const fh = await open(options.file, constants.O_RDWR | constants.O_APPEND | constants.O_CREAT | constants.O_DSYNC, 0o600);
  let truncatedTornBytes = 0;
  let last: AuditRecord | undefined;
  try {
    ({ truncatedTornBytes, last } = await recoverTail(fh));
  } catch (err) {
    await fh.close();
    throw err;
  }

  let pending: { lines: string; resolve: () => void; reject: (e: unknown) => void }[] = [];
  let writing = false;
  let failed: unknown;

  async function drain(): Promise<void> {
    while (pending.length > 0) {
      const batch = pending;
      pending = [];
      try {
        if (failed !== undefined) throw failed;
        await fh.appendFile(batch.map((b) => b.lines).join(''), 'utf8');
        for (const b of batch) b.resolve();
      } catch (err) {
        // After a failed write the file may hold part of the batch; refuse further appends so the
        // chain is not continued past a record that may not be on disk.
        failed ??= new AuditError('AUDIT_SINK_FAILED', 'audit log file cannot be written', { cause: err });
        for (const b of batch) b.reject(failed);
      }
    }
    writing = false;
  }

  return {
    truncatedTornBytes,
    append(records) {
      if (records.length === 0) return Promise.resolve();
      const last0 = records[records.length - 1];
      return new Promise<void>((resolve, reject) => {
        pending.push({ lines: records.map(formatAuditLine).join(''), resolve, reject });
        if (!writing) {
          writing = true;
          if (windowMs === 0) void drain();
          else setTimeout(() => void drain(), windowMs);
        }
      }).then(() => {
        last = last0;
      });
    },
    async read() {
      const st = await fh.stat();
      if (st.size > MAX_AUDIT_LOG_CHARS) throw new AuditError('AUDIT_SINK_FAILED', 'audit log too large to read at once');
      const buf = Buffer.alloc(st.size);
      await fh.read(buf, 0, st.size, 0);
      return parseAuditLog(buf.toString('utf8'));
    },
    async last() {
      return last;
    },
    async close() {
      await fh.close();
    },
  };
}

/** Find the last complete record; cut off a torn final line. */
async function recoverTail(fh: FileHandle): Promise<{ truncatedTornBytes: number; last: AuditRecord | undefined }> {
  const { size } = await fh.stat();
  if (size === 0) return { truncatedTornBytes: 0, last: undefined };
  const window = Math.min(size, 2 * MAX_AUDIT_LINE_CHARS + 2);
  const buf = Buffer.alloc(window);
  await fh.read(buf, 0, window, size - window);
  let end = window;
  let truncatedTornBytes = 0;
  if (buf[window - 1] !== 0x0a) {
    const nl = buf.lastIndexOf(0x0a);
    if (nl < 0 && window < size) throw new AuditError('AUDIT_LOG_CORRUPT', 'audit log ends with an over-long line');
    end = nl + 1;
    truncatedTornBytes = window - end;
    // SECURITY: a torn append is cut, not continued, so the next record starts on its own line and
    // the chain stays checkable; the cut is reported and logged (crash consistency).
    await fh.truncate(size - truncatedTornBytes);
    await fh.datasync();
  }
  if (end === 0) return { truncatedTornBytes, last: undefined };
  const start = buf.lastIndexOf(0x0a, end - 2) + 1;
  if (start === 0 && window < size) throw new AuditError('AUDIT_LOG_CORRUPT', 'audit log ends with an over-long line');
  try {
    return { truncatedTornBytes, last: decodeUnverifiedAuditRecord(JSON.parse(buf.subarray(start, end - 1).toString('utf8'))) };
  } catch (cause) {
    throw new AuditError('AUDIT_LOG_CORRUPT', 'the last audit record cannot be read', { cause });
  }
}
