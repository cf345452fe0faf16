import type { AuditKind, AuditRecord } from './record.js';

export interface AuditQuery {
  /** Records with seq ≥ sinceSeq. */
  readonly sinceSeq?: number;
  /** Records at or after this time. */
  readonly since?: Date;
  /** Records whose `fields.node` equals this. */
  readonly node?: string;
  readonly kind?: AuditKind;
  /** At most this many records (the oldest matching first). */
  readonly limit?: number;
}

/** Filter records (already in seq order). */
export function filterAuditRecords(records: readonly AuditRecord[], q: AuditQuery): AuditRecord[] {
  const since = q.since?.getTime();
  const out: AuditRecord[] = [];
  for (const r of records) {
    if (q.limit !== undefined && out.length >= q.limit) break;
    if (q.sinceSeq !== undefined && r.seq < q.sinceSeq) continue;
    if (since !== undefined && Date.parse(r.time) < since) continue;
    if (q.node !== undefined && r.fields.node !== q.node) continue;
    if (q.kind !== undefined && r.kind !== q.kind) continue;
    out.push(r);
  }
  return out;
}
