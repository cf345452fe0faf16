import { describe, expect, it } from 'vitest';
import { formatAuditLine, parseAuditLog } from './parse-log.js';
import { nextAuditRecord, type AuditRecord } from './record.js';
import { verifyAuditChain } from './verify-chain.js';

const t = new Date('2026-11-27T12:00:00Z');
function log(n: number): AuditRecord[] {
  const out: AuditRecord[] = [];
  for (let i = 0; i < n; i++) out.push(nextAuditRecord(out[i - 1], 'admin', { actor: 'alice', action: 'resource.put', resourcePath: `a/key/${i}` }, t));
  return out;
}

describe('parseAuditLog', () => {
  it('round-trips records written as JSON lines', () => {
    const records = log(3);
    const parsed = parseAuditLog(records.map(formatAuditLine).join(''));
    expect(parsed).toEqual({ records, badLines: [] });
    expect(verifyAuditChain(parsed.records).ok).toBe(true);
  });

  it('reports a torn last line (a crash mid-append) without parsing it', () => {
    const text = log(3).map(formatAuditLine).join('');
    const torn = text.slice(0, text.length - 20);
    const parsed = parseAuditLog(torn);
    expect(parsed.records).toHaveLength(2);
    expect(parsed.tornTail).toEqual({ line: 3, bytes: Buffer.byteLength(torn.split('\n')[2]!) });
  });

  it('reports bad complete lines by number: not JSON, unknown keys, secret-looking extra fields', () => {
    const [a, b, c] = log(3).map(formatAuditLine);
    const withSecret = JSON.stringify({ ...JSON.parse(b!), fields: { actor: 'alice', secret: 'hunter2' } }) + '\n';
    const extraKey = JSON.stringify({ ...JSON.parse(c!), note: 'x' }) + '\n';
    const parsed = parseAuditLog(a! + 'garbage\n' + withSecret + extraKey);
    expect(parsed.records).toHaveLength(1);
    expect(parsed.badLines.map((l) => l.line)).toEqual([2, 3, 4]);
  });
});

describe('nextAuditRecord', () => {
  it('refuses fields outside the allow-list and oversized values', () => {
    expect(() => nextAuditRecord(undefined, 'release', { secret: 'x' } as never, t)).toThrow(TypeError);
    expect(() => nextAuditRecord(undefined, 'release', { reason: 'x'.repeat(513) }, t)).toThrow(TypeError);
    expect(() => nextAuditRecord(undefined, 'bogus' as never, {}, t)).toThrow(TypeError);
  });
});
