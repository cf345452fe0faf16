import type { AuditRecord, ParsedAuditLog } from '@keyhold/audit';

/**
 * Where audit records are kept. Appends are in order and durable when the promise resolves;
 * implementations never rewrite or delete records. A Redis (or other shared) sink can be added
 * behind this interface.
 */
export interface AuditSink {
  /** Append records, in order, after every record appended before. */
  append(records: readonly AuditRecord[]): Promise<void>;
  /** Every stored record, with any damage found (bad lines, torn tail). */
  read(): Promise<ParsedAuditLog>;
  /** The newest record, to continue the chain after a restart. */
  last(): Promise<AuditRecord | undefined>;
  close(): Promise<void>;
}

/** An in-memory sink (tests, and deployments that forward records elsewhere). */
export function createMemoryAuditSink(): AuditSink & { readonly records: readonly AuditRecord[] } {
  const records: AuditRecord[] = [];
  return {
    records,
    async append(rs) {
      records.push(...rs);
    },
    async read() {
      return { records: [...records], badLines: [] };
    },
    async last() {
      return records[records.length - 1];
    },
    async close() {},
  };
}
