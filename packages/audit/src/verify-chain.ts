import { GENESIS_HASH, auditRecordHash, type AuditRecord } from './record.js';

export type AuditChainVerification =
  | { readonly ok: true; readonly count: number; readonly lastSeq: number; readonly lastHash: string }
  | { readonly ok: false; readonly firstBadSeq: number; readonly index: number; readonly reason: string };

export interface VerifyAuditChainOptions {
  /**
   * Accept a chain that starts after seq 1 (a `since` slice), trusting its first `prevHash`.
   * Default false: the chain must start at seq 1 from GENESIS_HASH.
   */
  readonly allowSuffix?: boolean;
  /** The last record's seq and hash as known from elsewhere; detects truncation of the tail. */
  readonly anchor?: { readonly seq: number; readonly hash: string };
}

/**
 * Verify a hash chain of audit records, in file order. Guarantees: each record's hash is the
 * SHA-256 of its canonical content; seqs run 1, 2, 3... without gaps or reordering; each record's
 * `prevHash` is the previous record's `hash`. So an edited, removed, inserted or reordered record
 * is reported, naming the first bad seq. It cannot, alone, detect that the newest records were cut
 * off (pass `anchor`), nor a log rewritten wholesale by someone who recomputes every hash (keep
 * the last hash somewhere else, e.g. in the service log or a signed checkpoint).
 */
export function verifyAuditChain(records: readonly AuditRecord[], options: VerifyAuditChainOptions = {}): AuditChainVerification {
  let prev: AuditRecord | undefined;
  for (const [index, r] of records.entries()) {
    const fail = (reason: string): AuditChainVerification => ({ ok: false, firstBadSeq: r.seq, index, reason });
    // SECURITY: the record's content must hash to its stored hash (an edited record).
    if (auditRecordHash(r) !== r.hash) return fail('record content does not match its hash (edited)');
    if (prev === undefined) {
      if (!options.allowSuffix) {
        // SECURITY: a full log starts at seq 1 from the genesis hash (records removed at the head).
        if (r.seq !== 1) return fail(`log starts at seq ${r.seq}, not 1 (records removed)`);
        if (r.prevHash !== GENESIS_HASH) return fail('first record does not chain from the genesis hash');
      }
    } else {
      // SECURITY: consecutive seqs and linked hashes (a removed, inserted or reordered record).
      if (r.seq !== prev.seq + 1) return fail(r.seq > prev.seq + 1 ? `seq ${prev.seq + 1} is missing (removed)` : `seq ${r.seq} is out of order (reordered or duplicated)`);
      if (r.prevHash !== prev.hash) return fail('prevHash does not match the previous record (edited or replaced)');
    }
    prev = r;
  }
  if (options.anchor !== undefined) {
    // SECURITY: the newest records must still be there (tail truncation).
    if (prev === undefined || prev.seq !== options.anchor.seq || prev.hash !== options.anchor.hash) {
      return { ok: false, firstBadSeq: (prev?.seq ?? 0) + 1, index: records.length, reason: 'log does not end at the anchored record (truncated)' };
    }
  }
  return { ok: true, count: records.length, lastSeq: prev?.seq ?? 0, lastHash: prev?.hash ?? GENESIS_HASH };
}

/**
 * Verify a parsed log file: damaged lines and a torn last line fail first (naming the seq that
 * would follow the last good record), then the chain itself.
 */
export function verifyParsedAuditLog(
  log: { readonly records: readonly AuditRecord[]; readonly badLines: readonly { readonly line: number; readonly reason: string }[]; readonly tornTail?: { readonly line: number; readonly bytes: number } },
  options: VerifyAuditChainOptions = {},
): AuditChainVerification {
  const bad = log.badLines[0];
  if (bad !== undefined) {
    // Every line before the first bad one parsed, so the last good record is at index line-2.
    return { ok: false, firstBadSeq: (log.records[bad.line - 2]?.seq ?? 0) + 1, index: bad.line - 1, reason: `line ${bad.line}: ${bad.reason}` };
  }
  if (log.tornTail !== undefined) {
    return {
      ok: false,
      firstBadSeq: (log.records.at(-1)?.seq ?? 0) + 1,
      index: log.records.length,
      reason: `torn last line ${log.tornTail.line} (${log.tornTail.bytes} bytes; a crash during an append, or truncation)`,
    };
  }
  return verifyAuditChain(log.records, options);
}
