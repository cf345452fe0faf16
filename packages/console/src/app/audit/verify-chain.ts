import canonicalize from 'canonicalize';

/** An audit record as `GET /kbs/v0/audit` returns it (see @keyhold/audit). */
export interface AuditRecordView {
  readonly seq: number;
  readonly time: string;
  readonly kind: string;
  readonly fields: Readonly<Record<string, string | number>>;
  readonly prevHash: string;
  readonly hash: string;
}

export type ChainVerification =
  | { readonly ok: true; readonly count: number; readonly lastSeq: number; readonly lastHash: string }
  | { readonly ok: false; readonly firstBadSeq: number; readonly reason: string };

export const GENESIS_HASH = '0'.repeat(64);

function hex(bytes: ArrayBuffer): string {
  return [...new Uint8Array(bytes)].map((b) => b.toString(16).padStart(2, '0')).join('');
}

/** SHA-256 of the RFC 8785 canonical JSON of {seq, time, kind, fields, prevHash}, as the KBS computes it. */
export async function auditRecordHash(r: Omit<AuditRecordView, 'hash'>, subtle: SubtleCrypto = crypto.subtle): Promise<string> {
  const text = canonicalize({ seq: r.seq, time: r.time, kind: r.kind, fields: r.fields, prevHash: r.prevHash });
  if (text === undefined) throw new TypeError('record is not JSON');
  return hex(await subtle.digest('SHA-256', new TextEncoder().encode(text)));
}

/**
 * Verify the audit hash chain in the browser, independently of the server, with the rules of
 * `keyhold audit --verify`: every record hashes to its `hash`, the trail starts at seq 1 from the
 * genesis hash, seqs are consecutive and each `prevHash` is the previous `hash`; with `anchor` (the
 * head the KBS reports) the trail must end there (tail truncation). Names the first bad record.
 */
export async function verifyAuditChain(
  records: readonly AuditRecordView[],
  options: { readonly anchor?: { readonly seq: number; readonly hash: string }; readonly subtle?: SubtleCrypto } = {},
): Promise<ChainVerification> {
  let prev: AuditRecordView | undefined;
  for (const r of records) {
    const fail = (reason: string): ChainVerification => ({ ok: false, firstBadSeq: r.seq, reason });
    if ((await auditRecordHash(r, options.subtle)) !== r.hash) return fail('record content does not match its hash (edited)');
    if (prev === undefined) {
      if (r.seq !== 1) return fail(`trail starts at seq ${r.seq}, not 1 (records removed)`);
      if (r.prevHash !== GENESIS_HASH) return fail('first record does not chain from the genesis hash');
    } else {
      if (r.seq !== prev.seq + 1) return fail(r.seq > prev.seq + 1 ? `seq ${prev.seq + 1} is missing (removed)` : `seq ${r.seq} is out of order`);
      if (r.prevHash !== prev.hash) return fail('prevHash does not match the previous record (edited or replaced)');
    }
    prev = r;
  }
  if (options.anchor !== undefined && (prev === undefined ? options.anchor.seq !== 0 : prev.seq !== options.anchor.seq || prev.hash !== options.anchor.hash)) {
    return { ok: false, firstBadSeq: (prev?.seq ?? 0) + 1, reason: 'trail does not end at the head the KBS reports (truncated)' };
  }
  return { ok: true, count: records.length, lastSeq: prev?.seq ?? 0, lastHash: prev?.hash ?? GENESIS_HASH };
}
