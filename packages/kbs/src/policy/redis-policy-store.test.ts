import { POLICY_HISTORY_LIMIT, AFFIRMING_RESOURCE_POLICY, DENY_ALL_RESOURCE_POLICY, createPolicyEngine, type AttestationPolicyDocument, type ResourcePolicyDocument } from '@keyhold/policy';
import { freePort, startRedis, type RedisServer } from '@keyhold/test-harness';
import { Redis } from 'ioredis';
import { afterAll, describe, expect, it } from 'vitest';
import { RedisPolicyStore } from './redis-policy-store.js';

const server: RedisServer = await startRedis();
const clients: Redis[] = [];
afterAll(async () => {
  for (const c of clients) c.disconnect();
  await server.stop();
});

let prefixes = 0;
const nextPrefix = (): string => `p${prefixes++}`;
function client(url = server.url): Redis {
  const c = new Redis(url, { maxRetriesPerRequest: 1, commandTimeout: 1000, retryStrategy: (n) => Math.min(n * 50, 500) });
  c.on('error', () => undefined);
  clients.push(c);
  return c;
}

const repoPolicy: ResourcePolicyDocument = { id: 'repo-a', type: 'cel', kind: 'resource', rule: 'repository == "a"' };

describe('RedisPolicyStore', () => {
  it('stores, lists and deletes policies; versions grow and are never reused after a delete', async () => {
    const keyPrefix = nextPrefix();
    const store = new RedisPolicyStore(client(), { keyPrefix });
    expect(await store.get({ kind: 'resource' })).toBeUndefined();
    const v1 = await store.put({ kind: 'resource' }, AFFIRMING_RESOURCE_POLICY, { updatedBy: 'alice' });
    expect(v1).toMatchObject({ version: 1, updatedBy: 'alice' });
    expect((await store.put({ kind: 'resource' }, DENY_ALL_RESOURCE_POLICY)).version).toBe(2);
    await store.put({ kind: 'resource', repository: 'a' }, repoPolicy);
    // A second store object (another KBS process) sees the same content.
    const other = new RedisPolicyStore(client(), { keyPrefix });
    expect(await other.get({ kind: 'resource' })).toMatchObject({ version: 2, document: DENY_ALL_RESOURCE_POLICY });
    expect((await other.list()).map((p) => [p.ref, p.version])).toEqual([
      [{ kind: 'resource' }, 2],
      [{ kind: 'resource', repository: 'a' }, 1],
    ]);
    expect(await other.delete({ kind: 'resource' })).toBe(true);
    expect(await other.delete({ kind: 'resource' })).toBe(false);
    expect(await store.get({ kind: 'resource' })).toBeUndefined();
    expect((await store.put({ kind: 'resource' }, AFFIRMING_RESOURCE_POLICY)).version).toBe(3);
  });

  it('compare-and-set: expectedVersion must match, across store objects and under a race', async () => {
    const keyPrefix = nextPrefix();
    const a = new RedisPolicyStore(client(), { keyPrefix });
    const b = new RedisPolicyStore(client(), { keyPrefix });
    await expect(a.put({ kind: 'resource' }, AFFIRMING_RESOURCE_POLICY, { expectedVersion: 1 })).rejects.toMatchObject({ code: 'POLICY_VERSION_CONFLICT' });
    expect((await a.put({ kind: 'resource' }, AFFIRMING_RESOURCE_POLICY, { expectedVersion: 0 })).version).toBe(1);
    const results = await Promise.allSettled(
      Array.from({ length: 10 }, (_, i) => (i % 2 === 0 ? a : b).put({ kind: 'resource' }, DENY_ALL_RESOURCE_POLICY, { expectedVersion: 1 })),
    );
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
    for (const r of results.filter((r) => r.status === 'rejected')) expect((r as PromiseRejectedResult).reason).toMatchObject({ code: 'POLICY_VERSION_CONFLICT' });
    expect((await b.get({ kind: 'resource' }))?.version).toBe(2);
    // Without expectedVersion, concurrent puts all succeed with distinct versions.
    const all = await Promise.all(Array.from({ length: 10 }, (_, i) => (i % 2 === 0 ? a : b).put({ kind: 'resource' }, AFFIRMING_RESOURCE_POLICY)));
    expect(all.map((p) => p.version).sort((x, y) => x - y)).toEqual(Array.from({ length: 10 }, (_, i) => i + 3));
  });

  it('backs the CEL policy engine', async () => {
    const engine = createPolicyEngine({ store: new RedisPolicyStore(client(), { keyPrefix: nextPrefix() }) });
    expect((await engine.putResourcePolicy(AFFIRMING_RESOURCE_POLICY, { repository: 'a' })).version).toBe(1);
    expect((await engine.resourcePolicy('a')).scope).toBe('repository');
    expect((await engine.resourcePolicy('b')).scope).toBe('default');
    expect((await engine.listPolicies()).map((p) => p.ref)).toEqual([{ kind: 'resource', repository: 'a' }]);
  });

  it('refuses a document in a slot of another kind and a bad repository name', async () => {
    const store = new RedisPolicyStore(client(), { keyPrefix: nextPrefix() });
    const att: AttestationPolicyDocument = { id: 'x', type: 'cel', kind: 'attestation', rule: 'true' } as unknown as AttestationPolicyDocument;
    await expect(store.put({ kind: 'resource' }, att as never)).rejects.toMatchObject({ code: 'POLICY_INVALID_DOCUMENT' });
    await expect(store.put({ kind: 'attestation', id: 'y' }, att)).rejects.toMatchObject({ code: 'POLICY_INVALID_DOCUMENT' });
    await expect(store.get({ kind: 'resource', repository: '../x' })).rejects.toMatchObject({ code: 'POLICY_INVALID_DOCUMENT' });
  });

  it('keeps the history, newest first and bounded, seen by every store object, after a delete too', async () => {
    const keyPrefix = nextPrefix();
    const c = client();
    const a = new RedisPolicyStore(c, { keyPrefix });
    for (let i = 0; i < POLICY_HISTORY_LIMIT + 2; i++) await a.put({ kind: 'resource', repository: 'a' }, { ...repoPolicy, rule: `${i} == ${i}` }, { updatedBy: `u${i}` });
    await a.put({ kind: 'resource' }, AFFIRMING_RESOURCE_POLICY);
    await a.delete({ kind: 'resource', repository: 'a' });
    const b = new RedisPolicyStore(client(), { keyPrefix });
    const h = await b.history({ kind: 'resource', repository: 'a' });
    expect(h).toHaveLength(POLICY_HISTORY_LIMIT);
    expect(h[0]).toMatchObject({ version: POLICY_HISTORY_LIMIT + 2, updatedBy: `u${POLICY_HISTORY_LIMIT + 1}` });
    expect(h.at(-1)?.version).toBe(3);
    expect((await b.history({ kind: 'resource', repository: 'a' }, 2)).map((p) => p.version)).toEqual([POLICY_HISTORY_LIMIT + 2, POLICY_HISTORY_LIMIT + 1]);
    expect((await b.history({ kind: 'resource' })).map((p) => p.version)).toEqual([1]);
    // A history entry planted from another slot is refused, not shown as this slot's past.
    const global = await c.lindex(`{${keyPrefix}:policies}:hist:resource/global`, 0);
    await c.lpush(`{${keyPrefix}:policies}:hist:resource/repository/a`, global!);
    await expect(b.history({ kind: 'resource', repository: 'a' })).rejects.toMatchObject({ code: 'POLICY_STORE_FAILED' });
  });

  it('refuses tampered entries: moved to another slot, garbage, no version', async () => {
    const keyPrefix = nextPrefix();
    const c = client();
    const store = new RedisPolicyStore(c, { keyPrefix });
    await store.put({ kind: 'resource', repository: 'b' }, DENY_ALL_RESOURCE_POLICY);
    const doc = `{${keyPrefix}:policies}:doc`;
    await c.hset(doc, 'resource/repository/a', (await c.hget(doc, 'resource/repository/b'))!);
    await expect(store.get({ kind: 'resource', repository: 'a' })).rejects.toMatchObject({ code: 'POLICY_STORE_FAILED' });
    await c.hset(doc, 'resource/global', '1\n{not json');
    await expect(store.get({ kind: 'resource' })).rejects.toMatchObject({ code: 'POLICY_STORE_FAILED' });
    await c.hset(doc, 'resource/global', '{"ref":{"kind":"resource"}}');
    await expect(store.get({ kind: 'resource' })).rejects.toMatchObject({ code: 'POLICY_STORE_FAILED' });
    await expect(store.put({ kind: 'resource' }, DENY_ALL_RESOURCE_POLICY)).rejects.toMatchObject({ code: 'POLICY_STORE_FAILED' });
    await expect(store.list()).rejects.toMatchObject({ code: 'POLICY_STORE_FAILED' });
  });

  it('fails with POLICY_STORE_FAILED while Redis is down and works again when it returns', async () => {
    const own = await startRedis();
    try {
      const store = new RedisPolicyStore(client(own.url), { keyPrefix: nextPrefix(), operationTimeoutMs: 500 });
      await store.put({ kind: 'resource' }, AFFIRMING_RESOURCE_POLICY);
      await own.kill();
      await expect(store.get({ kind: 'resource' })).rejects.toMatchObject({ name: 'PolicyError', code: 'POLICY_STORE_FAILED' });
      await expect(store.put({ kind: 'resource' }, DENY_ALL_RESOURCE_POLICY)).rejects.toMatchObject({ code: 'POLICY_STORE_FAILED' });
      await own.restart();
      let ok = false;
      for (let i = 0; i < 50 && !ok; i++) ok = await store.list().then(() => true, () => false);
      expect(ok).toBe(true);
    } finally {
      await own.stop();
    }
  });

  it('fails with POLICY_STORE_FAILED when nothing listens (typed error, no hang)', async () => {
    const store = new RedisPolicyStore(client(`redis://127.0.0.1:${await freePort()}`), { operationTimeoutMs: 300 });
    await expect(store.list()).rejects.toMatchObject({ code: 'POLICY_STORE_FAILED' });
  });
});
