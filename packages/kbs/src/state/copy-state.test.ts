import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { verifyParsedAuditLog } from '@keyhold/audit';
import { startRedis, type RedisServer } from '@keyhold/test-harness';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_LIMITS, expectStateError, makeCaPems, nodeInput } from './conformance.test-support.js';
import { copyState, type CopyProgress } from './copy-state.js';
import { openEmbeddedState, openMemoryState } from './embedded/open-embedded-state.js';
import type { KbsState } from './ports.js';
import { openRedisState } from './redis/open-redis-state.js';
import { openStateAuditLog } from './state-audit-log.js';

const root = await mkdtemp(path.join(tmpdir(), 'kh-state-copy-'));
// Started in a hook (not at import), so a run that filters out every test starts and leaves nothing.
let redis: RedisServer;
beforeAll(async () => {
  redis = await startRedis();
});
afterAll(async () => {
  await redis?.stop();
  await rm(root, { recursive: true, force: true });
});
const ekHash = (): string => randomBytes(32).toString('hex');
const policyDoc = (id: string) => ({ id, type: 'cel' as const, kind: 'attestation' as const, rules: { status: '"affirming"' } });

/** An embedded state with some of everything; returns what it wrote. */
async function populate(s: KbsState, pems: string[]) {
  const nodes = Array.from({ length: 5 }, ekHash);
  for (const id of nodes) await s.nodes.compareAndSwap(id, 0, nodeInput(id));
  await s.nodes.compareAndSwap(nodes[0]!, 1, { ...nodeInput(nodes[0]!), state: 'revoked', revokedAt: '2025-03-01T00:00:00.000Z' });
  await s.referenceValues.set({ tpm_pcr7: ['aa'], trusted_ak: ['k1'] });
  const listed = ekHash();
  await s.ekAllowlist.add(listed, { note: 'rack 1', now: new Date('2025-01-01T00:00:00Z') });
  await s.ekCa.add(Buffer.from(pems.join('\n')));
  await s.policies.put({ kind: 'attestation', id: 'p' }, policyDoc('p'));
  await s.policies.put({ kind: 'attestation', id: 'p' }, policyDoc('p'));
  await s.policies.put({ kind: 'attestation', id: 'q' }, policyDoc('q'));
  await s.nodeCa.createIfAbsent({ certificatePem: '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n', wrappedKey: 'wrapped-key', createdAt: '2025-01-01T00:00:00.000Z' });
  const log = await openStateAuditLog(s);
  for (let i = 0; i < 7; i++) await log.record('admin', { action: 'copy.test', reason: String(i) });
  return { nodes, listed };
}

describe('copyState', () => {
  it('copies an embedded data dir into Redis: everything, policy versions and the identical audit chain', async () => {
    const pems = await makeCaPems(2);
    const src = await openEmbeddedState({ dataDir: path.join(root, 'src1'), sessionLimits: DEFAULT_LIMITS });
    const dst = await openRedisState({ url: redis.url, keyPrefix: `copy${randomBytes(3).toString('hex')}`, sessionLimits: DEFAULT_LIMITS });
    try {
      const { nodes, listed } = await populate(src, pems);
      const seen: CopyProgress[] = [];
      const summary = await copyState(src, dst, { onProgress: (p) => seen.push(p) });
      expect(summary).toEqual({
        nodes: { copied: 5, skipped: 0 },
        referenceValues: { copied: 2 },
        ekAllowlist: { copied: 1 },
        ekCa: { copied: 2, alreadyPresent: 0 },
        policies: { copied: 2, skipped: 0 },
        nodeCa: { copied: 1 },
        audit: { copied: 7, rechained: false, sourceChainOk: true },
      });
      expect(new Set(seen.map((p) => p.store))).toEqual(new Set(['policies', 'referenceValues', 'ekAllowlist', 'ekCa', 'nodes', 'nodeCa', 'audit']));
      expect(await dst.nodeCa.get()).toEqual(await src.nodeCa.get());
      expect(await dst.nodes.get(nodes[0]!)).toMatchObject({ state: 'revoked', revokedAt: '2025-03-01T00:00:00.000Z', version: 1 });
      for (const id of nodes.slice(1)) expect((await dst.nodes.get(id))?.akName).toBe((await src.nodes.get(id))?.akName);
      expect((await dst.referenceValues.snapshot()).all()).toEqual({ tpm_pcr7: ['aa'], trusted_ak: ['k1'] });
      expect(await dst.ekAllowlist.list()).toEqual([{ ekHash: listed, note: 'rack 1', addedAt: '2025-01-01T00:00:00.000Z' }]);
      expect((await dst.ekCa.snapshot()).entries.map((e) => e.sha256).sort()).toEqual((await src.ekCa.snapshot()).entries.map((e) => e.sha256).sort());
      expect((await dst.policies.get({ kind: 'attestation', id: 'p' }))?.version).toBe(2);
      expect((await dst.policies.put({ kind: 'attestation', id: 'p' }, policyDoc('p'))).version).toBe(3);
      const a = await src.audit.read();
      const b = await dst.audit.read();
      expect(b.records).toEqual(a.records);
      expect(verifyParsedAuditLog(b).ok).toBe(true);
      // The chain continues on the target.
      const log = await openStateAuditLog(dst);
      expect((await log.record('admin', { action: 'after.copy' })).seq).toBe(8);
      expect(verifyParsedAuditLog(await dst.audit.read()).ok).toBe(true);

      // A second copy into the now non-empty target is refused...
      const err = await expectStateError(copyState(src, dst), 'STATE_CONFLICT');
      expect(err.message).toMatch(/nodes.*reference values.*EK allowlist.*EK CA uploads.*policies.*audit trail/);
      // ...unless merging: the target's records win, the trail is re-chained onto its head.
      const merged = await copyState(src, dst, { merge: true });
      expect(merged.nodes).toEqual({ copied: 0, skipped: 5 });
      expect(merged.policies).toEqual({ copied: 0, skipped: 2 });
      expect(merged.ekCa).toEqual({ copied: 0, alreadyPresent: 2 });
      expect(merged.audit).toMatchObject({ copied: 7, rechained: true });
      const after = await dst.audit.read();
      expect(after.records).toHaveLength(15);
      expect(verifyParsedAuditLog(after).ok).toBe(true);
    } finally {
      await src.close();
      await dst.close();
    }
  });

  it('copies the other way (Redis into a fresh data dir) and reopens it', async () => {
    const pems = await makeCaPems(1);
    const src = await openRedisState({ url: redis.url, keyPrefix: `copy${randomBytes(3).toString('hex')}`, sessionLimits: DEFAULT_LIMITS });
    const dir = path.join(root, 'dst2');
    const dst = await openEmbeddedState({ dataDir: dir, sessionLimits: DEFAULT_LIMITS });
    try {
      const { nodes } = await populate(src, pems);
      const summary = await copyState(src, dst);
      expect(summary.audit).toEqual({ copied: 7, rechained: false, sourceChainOk: true });
      expect(summary.nodes.copied).toBe(5);
      await dst.close();
      const again = await openEmbeddedState({ dataDir: dir, sessionLimits: DEFAULT_LIMITS });
      try {
        expect((await again.nodes.get(nodes[0]!))?.state).toBe('revoked');
        expect((await again.policies.get({ kind: 'attestation', id: 'p' }))?.version).toBe(2);
        expect((await again.audit.read()).records).toEqual((await src.audit.read()).records);
      } finally {
        await again.close();
      }
    } finally {
      await src.close();
      await dst.close();
    }
  });

  it('refuses a target that no state opener made', async () => {
    const src = await openMemoryState({ sessionLimits: DEFAULT_LIMITS });
    const fake = { ...(await openMemoryState({ sessionLimits: DEFAULT_LIMITS })) };
    await expect(copyState(src, fake)).rejects.toBeInstanceOf(TypeError);
  });
});
