import { describe, expect, it } from 'vitest';
import { AFFIRMING_RESOURCE_POLICY, DENY_ALL_RESOURCE_POLICY } from './defaults.js';
import { createPolicyEngine } from './engine.js';
import { POLICY_HISTORY_LIMIT, createMemoryPolicyStore, parsePolicyStoreSnapshot } from './store.js';
import type { ResourcePolicyDocument } from './document.js';

const rule = (n: number): ResourcePolicyDocument => ({ id: 'repo-a', type: 'cel', kind: 'resource', rule: `repository == "a" && ${n} == ${n}` });
const A = { kind: 'resource', repository: 'a' } as const;

describe('policy history', () => {
  it('keeps the newest versions of each slot, newest first, bounded, across deletes', async () => {
    const store = createMemoryPolicyStore({ historyLimit: 3 });
    for (let i = 1; i <= 5; i++) await store.put(A, rule(i), { updatedBy: `admin${i}` });
    await store.put({ kind: 'resource' }, AFFIRMING_RESOURCE_POLICY);
    const h = await store.history(A);
    expect(h.map((p) => p.version)).toEqual([5, 4, 3]);
    expect(h[0]).toMatchObject({ updatedBy: 'admin5', document: rule(5) });
    expect((await store.history(A, 1)).map((p) => p.version)).toEqual([5]);
    expect((await store.history({ kind: 'resource' })).map((p) => p.version)).toEqual([1]);
    // A deleted policy's past versions stay in its history; the next put continues the numbering.
    await store.delete(A);
    expect((await store.history(A)).map((p) => p.version)).toEqual([5, 4, 3]);
    await store.put(A, rule(6));
    expect((await store.history(A)).map((p) => p.version)).toEqual([6, 5, 4]);
    expect(await store.history({ kind: 'resource', repository: 'other' })).toEqual([]);
  });

  it('round-trips through a snapshot, and loads a snapshot written before history existed', async () => {
    const store = createMemoryPolicyStore();
    await store.put(A, rule(1));
    await store.put(A, rule(2));
    const snap = parsePolicyStoreSnapshot(JSON.parse(JSON.stringify(store.snapshot())));
    expect((await createMemoryPolicyStore({ snapshot: snap }).history(A)).map((p) => p.version)).toEqual([2, 1]);
    const { history: _dropped, ...old } = store.snapshot();
    const legacy = parsePolicyStoreSnapshot(JSON.parse(JSON.stringify(old)));
    expect(legacy.history).toBeUndefined();
    expect((await createMemoryPolicyStore({ snapshot: legacy }).history(A)).map((p) => p.version)).toEqual([2]);
  });

  it('refuses a tampered history: an entry filed under another slot, an oversized list', async () => {
    const store = createMemoryPolicyStore();
    await store.put(A, rule(1));
    await store.put({ kind: 'resource' }, DENY_ALL_RESOURCE_POLICY);
    const snap = JSON.parse(JSON.stringify(store.snapshot()));
    const moved = { ...snap, history: { ...snap.history, 'resource/repository/a': snap.history['resource/global'] } };
    expect(() => parsePolicyStoreSnapshot(moved)).toThrow(/does not belong to its slot/);
    const long = { ...snap, history: { 'resource/repository/a': Array.from({ length: POLICY_HISTORY_LIMIT + 1 }, () => snap.history['resource/repository/a'][0]) } };
    expect(() => parsePolicyStoreSnapshot(long)).toThrow(/bad history list/);
    expect(() => parsePolicyStoreSnapshot({ ...snap, history: [] })).toThrow(/bad history/);
  });

  it('the engine answers history, or the current version for a store that keeps none', async () => {
    const memory = createMemoryPolicyStore();
    const engine = createPolicyEngine({ store: memory });
    await engine.putResourcePolicy(rule(1), { repository: 'a' });
    await engine.putResourcePolicy(rule(2), { repository: 'a' });
    expect((await engine.policyHistory(A)).map((p) => p.version)).toEqual([2, 1]);
    const bare = createPolicyEngine({ store: { get: memory.get, put: memory.put, delete: memory.delete, list: memory.list } });
    expect((await bare.policyHistory(A)).map((p) => p.version)).toEqual([2]);
    expect(await bare.policyHistory({ kind: 'attestation', id: 'none' })).toEqual([]);
  });
});
