import { nextAuditRecord, type AuditRecord } from '@keyhold/audit';
import type { AuditSink } from '../../audit/sink.js';

const CHUNK = 500;

/**
 * Append `records` to a sink that stores records as given (file and memory sinks): unchanged when
 * the trail is empty, re-chained onto its head otherwise.
 */
export async function importAuditInto(sink: AuditSink, records: readonly AuditRecord[]): Promise<{ appended: number; rechained: boolean }> {
  let head = await sink.last();
  const rechained = head !== undefined;
  for (let i = 0; i < records.length; i += CHUNK) {
    let chunk = records.slice(i, i + CHUNK);
    if (rechained) {
      chunk = chunk.map((r) => {
        const n = nextAuditRecord(head, r.kind, r.fields, new Date(r.time));
        head = n;
        return n;
      });
    }
    await sink.append(chunk);
  }
  return { appended: records.length, rechained };
}

/** A sink that keeps nothing (audit disabled in the configuration). */
export function createDiscardAuditSink(): AuditSink {
  return {
    async append() {},
    async read() {
      return { records: [], badLines: [] };
    },
    async last() {
      return undefined;
    },
    async close() {},
  };
}
