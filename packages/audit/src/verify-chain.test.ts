import { describe, expect, it } from 'vitest';
import { GENESIS_HASH, auditRecordHash, nextAuditRecord, type AuditRecord } from './record.js';
import { verifyAuditChain } from './verify-chain.js';

function chain(n: number): AuditRecord[] {
  const out: AuditRecord[] = [];
  for (let i = 0; i < n; i++) {
    out.push(nextAuditRecord(out[i - 1], i % 2 === 0 ? 'attest' : 'release', { verdict: 'affirming', node: `node-${i % 3}`, policyId: 'default', policyVersion: 1 }, new Date(Date.UTC(2026, 10, 27, 12, 0, i))));
  }
  return out;
}

describe('verifyAuditChain', () => {
  it('accepts an intact chain and reports its head', () => {
    const c = chain(5);
    expect(c[0]?.prevHash).toBe(GENESIS_HASH);
    expect(verifyAuditChain(c)).toEqual({ ok: true, count: 5, lastSeq: 5, lastHash: c[4]?.hash });
    expect(verifyAuditChain([])).toMatchObject({ ok: true, count: 0 });
  });

  it('detects an edited middle record', () => {
    const c = chain(5);
    c[2] = { ...c[2]!, fields: { ...c[2]!.fields, verdict: 'contraindicated' } };
    expect(verifyAuditChain(c)).toMatchObject({ ok: false, firstBadSeq: 3, index: 2, reason: expect.stringMatching(/edited/) });
  });

  it('detects an edited middle record whose hash was recomputed (at the next record)', () => {
    const c = chain(5);
    const body = { ...c[2]!, fields: { ...c[2]!.fields, node: 'someone-else' } };
    c[2] = { ...body, hash: auditRecordHash(body) };
    expect(verifyAuditChain(c)).toMatchObject({ ok: false, firstBadSeq: 4, reason: expect.stringMatching(/prevHash/) });
  });

  it('detects a removed middle record', () => {
    const c = chain(5);
    c.splice(2, 1);
    expect(verifyAuditChain(c)).toMatchObject({ ok: false, firstBadSeq: 4, reason: 'seq 3 is missing (removed)' });
  });

  it('detects reordered records', () => {
    const c = chain(5);
    [c[2], c[3]] = [c[3]!, c[2]!];
    expect(verifyAuditChain(c)).toMatchObject({ ok: false, firstBadSeq: 4, index: 2 });
  });

  it('detects removal of the first record, and truncation of the tail with an anchor', () => {
    const c = chain(5);
    expect(verifyAuditChain(c.slice(1))).toMatchObject({ ok: false, firstBadSeq: 2 });
    expect(verifyAuditChain(c.slice(1), { allowSuffix: true })).toMatchObject({ ok: true, count: 4 });
    const anchor = { seq: 5, hash: c[4]!.hash };
    expect(verifyAuditChain(c, { anchor })).toMatchObject({ ok: true });
    expect(verifyAuditChain(c.slice(0, 4), { anchor })).toMatchObject({ ok: false, firstBadSeq: 5, reason: expect.stringMatching(/truncated/) });
  });

  it('detects a log rewritten from a removed record onwards only with an anchor', () => {
    const c = chain(5);
    const anchor = { seq: 5, hash: c[4]!.hash };
    // Remove record 3, renumber and re-hash everything after it: a consistent but shorter chain.
    const rewritten: AuditRecord[] = c.slice(0, 2);
    for (const r of c.slice(3)) rewritten.push(nextAuditRecord(rewritten[rewritten.length - 1], r.kind, r.fields, new Date(r.time)));
    expect(verifyAuditChain(rewritten).ok).toBe(true);
    expect(verifyAuditChain(rewritten, { anchor }).ok).toBe(false);
  });
});
