import { mkdtemp, readFile, rm, writeFile, appendFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { parseAuditLog, verifyAuditChain } from '@keyhold/audit';
import { createAuditLog } from './audit-log.js';
import { openFileAuditSink } from './file-audit-sink.js';
import { createMemoryAuditSink, type AuditSink } from './sink.js';

let dir: string;
let file: string;
beforeEach(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'keyhold-audit-'));
  file = path.join(dir, 'audit.jsonl');
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

let tick = 0;
const clock = () => new Date(Date.UTC(2026, 10, 27, 12, 0, tick++));

async function fill(sink: AuditSink) {
  const log = await createAuditLog({ sink, now: clock });
  await log.record('auth', { client: '127.0.0.1', tee: 'tpm', verdict: 'ok' });
  await log.record('attest', { node: 'ak:1111', verdict: 'affirming', policyId: 'default', policyVersion: 0 });
  await log.record('release', { node: 'ak:1111', resourcePath: 'a/key/1', policyId: 'affirming', policyVersion: 2, verdict: 'allow' });
  await log.record('deny', { node: 'ak:2222', resourcePath: 'b/key/1', policyId: 'deny-all', policyVersion: 1, reason: 'policy rule evaluated to false' });
  await log.record('admin', { actor: 'alice', action: 'resource.put', resourcePath: 'a/key/2', verdict: 'ok' });
  return log;
}

describe('audit log', () => {
  it('chains records in memory and answers queries by node and time', async () => {
    const sink = createMemoryAuditSink();
    const log = await fill(sink);
    expect(await log.verify()).toMatchObject({ ok: true, count: 5 });
    expect((await log.query({ node: 'ak:1111' })).map((r) => r.kind)).toEqual(['attest', 'release']);
    const third = sink.records[2]!;
    expect((await log.query({ since: new Date(third.time) })).map((r) => r.seq)).toEqual([3, 4, 5]);
    expect(log.head()).toEqual({ seq: 5, hash: sink.records[4]!.hash });
  });

  it('persists to a JSON-lines file and continues the chain after reopening', async () => {
    const sink = await openFileAuditSink({ file });
    await fill(sink);
    await sink.close();
    const again = await openFileAuditSink({ file });
    expect(again.truncatedTornBytes).toBe(0);
    const log = await createAuditLog({ sink: again, now: clock });
    expect((await log.record('auth', { verdict: 'ok' })).seq).toBe(6);
    expect(await log.verify()).toMatchObject({ ok: true, count: 6 });
    await again.close();
    const text = await readFile(file, 'utf8');
    expect(text.split('\n')).toHaveLength(7);
    expect(verifyAuditChain(parseAuditLog(text).records).ok).toBe(true);
  });

  it('keeps concurrent appends in chain order (group commit)', async () => {
    const sink = await openFileAuditSink({ file });
    const log = await createAuditLog({ sink, now: clock });
    const results = await Promise.all(Array.from({ length: 50 }, (_, i) => log.record('release', { resourcePath: `a/key/${i}`, verdict: 'allow' })));
    expect(results.map((r) => r.seq)).toEqual(Array.from({ length: 50 }, (_, i) => i + 1));
    expect(await log.verify()).toMatchObject({ ok: true, count: 50 });
    await sink.close();
  });

  it('keeps chain order and durability with no group commit window', async () => {
    const sink = await openFileAuditSink({ file, groupCommitWindowMs: 0 });
    const log = await createAuditLog({ sink, now: clock });
    const results = await Promise.all(Array.from({ length: 20 }, (_, i) => log.record('auth', { requestId: `r${i}` })));
    expect(results.map((r) => r.seq)).toEqual(Array.from({ length: 20 }, (_, i) => i + 1));
    await sink.close();
    expect(verifyAuditChain(parseAuditLog(await readFile(file, 'utf8')).records)).toMatchObject({ ok: true, count: 20 });
  });

  it('refuses a nonsensical group commit window (programmer error)', async () => {
    await expect(openFileAuditSink({ file, groupCommitWindowMs: -1 })).rejects.toThrow(TypeError);
    await expect(openFileAuditSink({ file, groupCommitWindowMs: Number.NaN })).rejects.toThrow(TypeError);
  });

  it('detects a middle record edited on disk, naming its seq', async () => {
    const sink = await openFileAuditSink({ file });
    await fill(sink);
    await sink.close();
    const lines = (await readFile(file, 'utf8')).split('\n');
    lines[2] = lines[2]!.replace('"allow"', '"deny"');
    await writeFile(file, lines.join('\n'));
    const reopened = await openFileAuditSink({ file });
    expect(await (await createAuditLog({ sink: reopened })).verify()).toMatchObject({ ok: false, firstBadSeq: 3 });
    await reopened.close();
  });

  it('detects a deleted and a reordered middle record on disk', async () => {
    const sink = await openFileAuditSink({ file });
    await fill(sink);
    await sink.close();
    const lines = (await readFile(file, 'utf8')).split('\n');
    await writeFile(file, [lines[0], lines[1], lines[3], lines[4], ''].join('\n'));
    let s = await openFileAuditSink({ file });
    expect(await (await createAuditLog({ sink: s })).verify()).toMatchObject({ ok: false, firstBadSeq: 4, reason: 'seq 3 is missing (removed)' });
    await s.close();
    await writeFile(file, [lines[0], lines[2], lines[1], lines[3], lines[4], ''].join('\n'));
    s = await openFileAuditSink({ file });
    expect(await (await createAuditLog({ sink: s })).verify()).toMatchObject({ ok: false, firstBadSeq: 3 });
    await s.close();
  });

  it('reports a garbage line by position', async () => {
    const sink = await openFileAuditSink({ file });
    await fill(sink);
    await sink.close();
    const lines = (await readFile(file, 'utf8')).split('\n');
    lines[3] = '{"seq":4,"oops"';
    await writeFile(file, lines.join('\n'));
    const s = await openFileAuditSink({ file });
    expect(await (await createAuditLog({ sink: s })).verify()).toMatchObject({ ok: false, firstBadSeq: 4, reason: expect.stringMatching(/^line 4/) });
    await s.close();
  });

  it('cuts a torn last line at open, reports it, and keeps the chain valid', async () => {
    const sink = await openFileAuditSink({ file });
    await fill(sink);
    await sink.close();
    await appendFile(file, '{"seq":6,"time":"2026-11-27T12:');
    expect(parseAuditLog(await readFile(file, 'utf8')).tornTail).toEqual({ line: 6, bytes: 31 });
    const s = await openFileAuditSink({ file });
    expect(s.truncatedTornBytes).toBe(31);
    const log = await createAuditLog({ sink: s, now: clock });
    const r = await log.record('admin', { action: 'audit.torn-tail-truncated', reason: `${s.truncatedTornBytes} bytes` });
    expect(r.seq).toBe(6);
    expect(await log.verify()).toMatchObject({ ok: true, count: 6 });
    await s.close();
  });

  it('refuses further records once the sink has failed', async () => {
    const broken: AuditSink = { ...createMemoryAuditSink(), append: async () => Promise.reject(new Error('disk full')) };
    const log = await createAuditLog({ sink: broken });
    await expect(log.record('auth', {})).rejects.toMatchObject({ code: 'AUDIT_SINK_FAILED' });
    await expect(log.record('auth', {})).rejects.toMatchObject({ code: 'AUDIT_SINK_FAILED' });
  });

  it('never accepts fields outside the allow-list (no secrets in the log)', async () => {
    const log = await createAuditLog({ sink: createMemoryAuditSink() });
    await expect(log.record('release', { value: 'the secret' } as never)).rejects.toThrow(TypeError);
  });
});
