import { describe, expect, it } from 'vitest';
import { nextAuditRecord, verifyAuditChain as verifyOnServer, type AuditRecord } from '@keyhold/audit';
import { auditRecordHash, verifyAuditChain as verifyInPage, type AuditRecordView } from './verify-chain.js';

/** The page reads records as JSON; the KBS's typed records are the same data. */
const verifyAuditChain = (records: readonly AuditRecord[], options?: Parameters<typeof verifyInPage>[1]) => verifyInPage(records as unknown as AuditRecordView[], options);

function trail(n: number): AuditRecord[] {
  const out: AuditRecord[] = [];
  for (let i = 0; i < n; i++) {
    out.push(nextAuditRecord(out.at(-1), i % 2 === 0 ? 'attest' : 'release', { verdict: 'affirming', node: `n${i}`, policyId: 'default', policyVersion: i, reason: 'é ✓ "quoted"' }, new Date(1_700_000_000_000 + i * 1000)));
  }
  return out;
}

describe('audit chain verification in the browser', () => {
  it('hashes records exactly as the KBS does (RFC 8785 + SHA-256)', async () => {
    for (const r of trail(5)) expect(await auditRecordHash(r as unknown as AuditRecordView)).toBe(r.hash);
  });

  it('accepts an intact trail anchored at the head, as keyhold audit --verify does', async () => {
    const t = trail(6);
    const head = { seq: 6, hash: t[5]!.hash };
    expect(await verifyAuditChain(t, { anchor: head })).toEqual({ ok: true, count: 6, lastSeq: 6, lastHash: head.hash });
    expect(verifyOnServer(t, { anchor: head }).ok).toBe(true);
    expect(await verifyAuditChain([], { anchor: { seq: 0, hash: '' } })).toMatchObject({ ok: true, count: 0 });
  });

  it('names the first bad record: edited, removed, reordered, truncated, not from genesis', async () => {
    const t = trail(6);
    const edited = t.map((r) => (r.seq === 3 ? { ...r, fields: { ...r.fields, verdict: 'contraindicated' } } : r));
    expect(await verifyAuditChain(edited)).toMatchObject({ ok: false, firstBadSeq: 3, reason: expect.stringMatching(/edited/) });
    expect(verifyOnServer(edited)).toMatchObject({ ok: false, firstBadSeq: 3 });
    expect(await verifyAuditChain(t.filter((r) => r.seq !== 4))).toMatchObject({ ok: false, firstBadSeq: 5, reason: 'seq 4 is missing (removed)' });
    expect(await verifyAuditChain([t[0]!, t[2]!, t[1]!])).toMatchObject({ ok: false, firstBadSeq: 3 });
    expect(await verifyAuditChain(t.slice(0, 4), { anchor: { seq: 6, hash: t[5]!.hash } })).toMatchObject({ ok: false, firstBadSeq: 5, reason: expect.stringMatching(/truncated/) });
    expect(await verifyAuditChain(t.slice(1))).toMatchObject({ ok: false, firstBadSeq: 2, reason: expect.stringMatching(/not 1/) });
  });
});
