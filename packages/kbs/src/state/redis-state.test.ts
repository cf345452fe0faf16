import { randomBytes } from 'node:crypto';
import { startRedis, startRedisCluster, type RedisCluster, type RedisServer } from '@keyhold/test-harness';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_LIMITS, expectStateError, makeCaPems, newSession, nodeInput, runStateConformance } from './conformance.test-support.js';
import { openRedisState } from './redis/open-redis-state.js';
import { openStateAuditLog } from './state-audit-log.js';

// Durable servers: every acknowledged write is on disk before Redis answers.
const AOF = ['--appendonly', 'yes', '--appendfsync', 'always'];
const OPERATION_TIMEOUT_MS = 1500;
// Started in hooks (not at import), so a run that filters out every test starts and leaves nothing.
let standalone: RedisServer;
let cluster: RedisCluster;
beforeAll(async () => {
  [standalone, cluster] = await Promise.all([startRedis({ args: AOF }), startRedisCluster({ masters: 3, args: AOF })]);
}, 60_000);
afterAll(async () => {
  await standalone?.stop();
  await cluster?.stop();
});

runStateConformance('redis standalone', {
  open: (scope, o) => openRedisState({ url: standalone.url, keyPrefix: scope, sessionLimits: o?.sessionLimits ?? DEFAULT_LIMITS, operationTimeoutMs: OPERATION_TIMEOUT_MS, ...(o?.eventRetention !== undefined ? { eventRetention: o.eventRetention } : {}) }),
  multiInstance: true,
  persistent: true,
  fault: { inject: () => standalone.kill(), heal: () => standalone.restart(), operationTimeoutMs: OPERATION_TIMEOUT_MS },
});

runStateConformance('redis cluster (3 masters)', {
  open: (scope, o) =>
    openRedisState({
      clusterNodes: cluster.nodes.map((n) => ({ host: n.host, port: n.port })),
      keyPrefix: scope,
      sessionLimits: o?.sessionLimits ?? DEFAULT_LIMITS,
      operationTimeoutMs: OPERATION_TIMEOUT_MS,
      ...(o?.eventRetention !== undefined ? { eventRetention: o.eventRetention } : {}),
    }),
  multiInstance: true,
  persistent: true,
  fault: { inject: () => cluster.kill(), heal: () => cluster.restart(), operationTimeoutMs: OPERATION_TIMEOUT_MS },
});

describe('redis state: tampered data fails closed; key layout', () => {
  it('refuses moved, malformed or forged records with STATE_CORRUPT', async () => {
    const prefix = `tamper${randomBytes(3).toString('hex')}`;
    const s = await openRedisState({ url: standalone.url, keyPrefix: prefix, sessionLimits: DEFAULT_LIMITS });
    const raw = new Redis(standalone.url);
    try {
      const a = randomBytes(32).toString('hex');
      const b = randomBytes(32).toString('hex');
      await s.nodes.compareAndSwap(a, 0, nodeInput(a));
      await s.nodes.compareAndSwap(b, 0, { ...nodeInput(b), state: 'revoked', revokedAt: new Date().toISOString() });
      // A clean record copied over a revoked node's key.
      await raw.hset(`{${prefix}:nodes}:r`, b, (await raw.hget(`{${prefix}:nodes}:r`, a))!);
      await expectStateError(s.nodes.get(b), 'STATE_CORRUPT');
      await raw.hset(`{${prefix}:nodes}:r`, b, 'no version');
      await expectStateError(s.nodes.get(b), 'STATE_CORRUPT');
      await expectStateError(s.nodes.compareAndSwap(b, 1, nodeInput(b)), 'STATE_CORRUPT');
      await expectStateError(s.nodes.list(), 'STATE_CORRUPT');

      const sess = newSession({ shard: 'a' });
      await s.sessions.create(sess);
      await raw.hset(`{${prefix}:sess:a}:d`, sess.id, '{"t":1}');
      await expectStateError(s.sessions.get(sess.id), 'STATE_CORRUPT');

      await s.referenceValues.set({ x: ['1'] });
      await raw.hset(`{${prefix}:refs}:v`, 'x', '{"not":"a list"}');
      await raw.incr(`{${prefix}:refs}:ver`);
      await expectStateError(s.referenceValues.snapshot(), 'STATE_CORRUPT');

      const [pem1, pem2] = await makeCaPems(2);
      const { added } = await s.ekCa.add(Buffer.from(pem1!));
      // Another certificate stored under the first one's hash.
      await raw.hset(`{${prefix}:ekca}:c`, added[0]!.sha256, pem2!);
      await raw.incr(`{${prefix}:ekca}:ver`);
      await expectStateError(s.ekCa.snapshot(), 'STATE_CORRUPT');
      // A version counter that is no version (damaged or forged): both cached stores refuse.
      await raw.set(`{${prefix}:ekca}:ver`, 'not-a-number');
      await expectStateError(s.ekCa.snapshot(), 'STATE_CORRUPT');
      await raw.set(`{${prefix}:refs}:ver`, '-5');
      await expectStateError(s.referenceValues.snapshot(), 'STATE_CORRUPT');

      const record = { policyKey: 'a'.repeat(64), resetCount: 1, checkpoint: { bank: 'sha256' as const, nextIndex: 2, pcrValue: new Uint8Array(32) }, prefixChars: 10, prefixSha256: 'b'.repeat(64) };
      await s.imaCheckpoints.set('node1', record);
      await raw.set(`{${prefix}:ima:node1}`, JSON.stringify({ ...JSON.parse((await raw.get(`{${prefix}:ima:node1}`))!), pcr: 'ab' }));
      await expectStateError(s.imaCheckpoints.get('node1'), 'STATE_CORRUPT');

      // A stream entry another writer added, an event that does not fit, a cursor that is no id, a bad CA record.
      await s.events.publish([{ type: 'node.banned', at: new Date().toISOString(), node: a }]);
      await raw.xadd(`{${prefix}:events}:s`, '*', 'x', 'y');
      await expectStateError(s.events.read({ limit: 10 }), 'STATE_CORRUPT');
      await raw.del(`{${prefix}:events}:s`);
      await raw.xadd(`{${prefix}:events}:s`, '*', 'e', JSON.stringify({ type: 'release', at: 'now', secret: 'x' }));
      await expectStateError(s.events.latest(1), 'STATE_CORRUPT');
      await raw.hset(`{${prefix}:events}:cur`, 'hook', 'not-an-id');
      await expectStateError(s.events.cursor('hook'), 'STATE_CORRUPT');
      await raw.set(`{${prefix}:nodeca}`, '{"certificatePem":"x"}');
      await expectStateError(s.nodeCa.get(), 'STATE_CORRUPT');
    } finally {
      raw.disconnect();
      await s.close();
    }
  });

  it('keeps every key under the prefix hash tag, one tag per atomic group, with TTLs where promised', async () => {
    const prefix = `layout${randomBytes(3).toString('hex')}`;
    const s = await openRedisState({ url: standalone.url, keyPrefix: prefix, sessionLimits: DEFAULT_LIMITS });
    const raw = new Redis(standalone.url);
    try {
      const id = randomBytes(32).toString('hex');
      const sess = newSession({ shard: '7', ttlMs: 60_000 });
      await s.sessions.create(sess);
      await s.nodes.compareAndSwap(id, 0, nodeInput(id));
      await s.referenceValues.set({ r: ['1'] });
      await s.ekAllowlist.add(id);
      await s.ekCa.add(Buffer.from((await makeCaPems(1))[0]!));
      await s.imaCheckpoints.set('n', { policyKey: 'a'.repeat(64), resetCount: 1, checkpoint: { bank: 'sha1', nextIndex: 2, pcrValue: new Uint8Array(20) }, prefixChars: 1, prefixSha256: 'b'.repeat(64) });
      await s.rateLimits.take('10.0.0.1', { ratePerSec: 1, burst: 2 });
      await (await openStateAuditLog(s)).record('admin', { action: 'layout' });
      await s.policies.put({ kind: 'attestation', id: 'l' }, { id: 'l', type: 'cel', kind: 'attestation', rules: { status: '"affirming"' } });
      await s.events.publish([{ type: 'node.stale', at: new Date().toISOString(), node: id }]);
      await s.leases.acquire('sweeper', 'me', 60_000);
      await s.events.advanceCursor('hook', (await s.events.latest(1))[0]!.id, { lease: 'sweeper', holder: 'me' });
      await s.nodeCa.createIfAbsent({ certificatePem: '-----BEGIN CERTIFICATE-----\n', wrappedKey: 'k', createdAt: new Date().toISOString() });
      const keys = (await raw.keys(`{${prefix}*`)).sort();
      const tags = new Set(keys.map((k) => k.slice(0, k.indexOf('}') + 1)));
      expect([...tags].map((t) => t.replace(/rl:[0-9a-f]{32}/, 'rl:<digest>')).sort()).toEqual(
        [
          `{${prefix}:audit}`,
          `{${prefix}:ekallow}`,
          `{${prefix}:ekca}`,
          `{${prefix}:events}`,
          `{${prefix}:ima:n}`,
          `{${prefix}:nodeca}`,
          `{${prefix}:nodes}`,
          `{${prefix}:policies}`,
          `{${prefix}:refs}`,
          `{${prefix}:rl:<digest>}`,
          `{${prefix}:sess:7}`,
        ].sort(),
      );
      for (const k of keys) {
        const ttl = await raw.pttl(k);
        if (k.includes(':sess:') || k.includes(':ima:') || k.includes(':rl:') || k.includes(':lease:')) expect(ttl, k).toBeGreaterThan(0);
        else expect(ttl, k).toBe(-1);
      }
      expect(await raw.pttl(`{${prefix}:sess:7}:d`)).toBeGreaterThan(60_000);
    } finally {
      raw.disconnect();
      await s.close();
    }
  });
});
