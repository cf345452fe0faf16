import { filterAuditRecords, nextAuditRecord, verifyParsedAuditLog, type AuditChainVerification, type AuditFields, type AuditKind, type AuditQuery, type AuditRecord } from '@keyhold/audit';
import { AuditError } from './errors.js';
import type { AuditSink } from './sink.js';

export interface AuditLog {
  /** Append one record (chained to the previous one); resolves once the sink has stored it. */
  record(kind: AuditKind, fields: AuditFields): Promise<AuditRecord>;
  query(q?: AuditQuery): Promise<AuditRecord[]>;
  /** Verify the whole stored chain; bad lines or a torn tail also make it fail. */
  verify(): Promise<AuditChainVerification>;
  /** seq and hash of the newest record, to log elsewhere as an anchor against tail truncation. */
  head(): { readonly seq: number; readonly hash: string } | undefined;
}

export interface AuditLogOptions {
  readonly sink: AuditSink;
  readonly now?: () => Date;
}

/**
 * The KBS's tamper-evident audit trail over a sink. Records get their seq, time, prevHash and hash
 * here, synchronously and in call order, so concurrent requests cannot fork the chain. If the sink
 * fails, the log refuses every later record (AUDIT_SINK_FAILED) rather than continue a chain whose
 * previous link may be missing.
 */
export async function createAuditLog(options: AuditLogOptions): Promise<AuditLog> {
  const now = options.now ?? (() => new Date());
  const { sink } = options;
  let head: AuditRecord | undefined;
  try {
    head = await sink.last();
  } catch (cause) {
    throw new AuditError('AUDIT_SINK_FAILED', 'audit log cannot be opened', { cause });
  }
  let failed: AuditError | undefined;

  return {
    async record(kind, fields) {
      if (failed !== undefined) throw failed;
      const r = nextAuditRecord(head, kind, fields, now());
      head = r;
      try {
        await sink.append([r]);
      } catch (cause) {
        failed ??= cause instanceof AuditError ? cause : new AuditError('AUDIT_SINK_FAILED', 'audit record could not be stored', { cause });
        throw failed;
      }
      return r;
    },
    async query(q = {}) {
      return filterAuditRecords((await sink.read()).records, q);
    },
    async verify() {
      return verifyParsedAuditLog(await sink.read());
    },
    head() {
      return head === undefined ? undefined : { seq: head.seq, hash: head.hash };
    },
  };
}
