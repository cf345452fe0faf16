import { mkdtemp, readFile, readdir, rm, writeFile, chmod } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { AFFIRMING_RESOURCE_POLICY, createPolicyEngine, type ResourcePolicyDocument } from '@keyhold/policy';
import { openFilePolicyStore } from './file-policy-store.js';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'keyhold-policy-'));
});
afterEach(async () => {
  await chmod(dir, 0o700).catch(() => undefined);
  await rm(dir, { recursive: true, force: true });
});

const repoPolicy: ResourcePolicyDocument = { id: 'repo-a', type: 'cel', kind: 'resource', rule: 'repository == "a"' };

describe('openFilePolicyStore', () => {
  it('persists policies and versions across reopen', async () => {
    const store = await openFilePolicyStore({ dataDir: dir });
    await store.put({ kind: 'resource' }, AFFIRMING_RESOURCE_POLICY, { updatedBy: 'alice' });
    await store.put({ kind: 'resource', repository: 'a' }, repoPolicy);
    await store.put({ kind: 'resource', repository: 'a' }, repoPolicy);
    await store.delete({ kind: 'resource' });

    const again = await openFilePolicyStore({ dataDir: dir });
    expect((await again.get({ kind: 'resource', repository: 'a' }))?.version).toBe(2);
    expect(await again.get({ kind: 'resource' })).toBeUndefined();
    // The deleted slot's version is not reused.
    expect((await again.put({ kind: 'resource' }, AFFIRMING_RESOURCE_POLICY)).version).toBe(2);
    // Only the store file remains: no temp files left behind.
    expect(await readdir(dir)).toEqual(['policies.json']);
  });

  it('keeps the version history across reopen (and loads a store file written without history)', async () => {
    const store = await openFilePolicyStore({ dataDir: dir });
    await store.put({ kind: 'resource', repository: 'a' }, repoPolicy, { updatedBy: 'alice' });
    await store.put({ kind: 'resource', repository: 'a' }, { ...repoPolicy, rule: 'false' });
    const again = await openFilePolicyStore({ dataDir: dir });
    const h = await again.history!({ kind: 'resource', repository: 'a' });
    expect(h.map((p) => [p.version, p.updatedBy, (p.document as ResourcePolicyDocument).rule])).toEqual([
      [2, undefined, 'false'],
      [1, 'alice', 'repository == "a"'],
    ]);
    const file = path.join(dir, 'policies.json');
    const { history: _h, ...legacy } = JSON.parse(await readFile(file, 'utf8'));
    await writeFile(file, JSON.stringify(legacy));
    const old = await openFilePolicyStore({ dataDir: dir });
    expect((await old.history!({ kind: 'resource', repository: 'a' })).map((p) => p.version)).toEqual([2]);
  });

  it('serialises concurrent puts without losing one', async () => {
    const store = await openFilePolicyStore({ dataDir: dir });
    const results = await Promise.all(Array.from({ length: 10 }, () => store.put({ kind: 'resource', repository: 'a' }, repoPolicy)));
    expect(results.map((r) => r.version).sort((x, y) => x - y)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    const again = await openFilePolicyStore({ dataDir: dir });
    expect((await again.get({ kind: 'resource', repository: 'a' }))?.version).toBe(10);
  });

  // Root ignores directory permissions, so the write cannot be made to fail this way.
  it.skipIf(process.getuid?.() === 0)('rolls back in memory when the file cannot be written', async () => {
    const store = await openFilePolicyStore({ dataDir: dir });
    await store.put({ kind: 'resource' }, AFFIRMING_RESOURCE_POLICY);
    await chmod(dir, 0o500);
    await expect(store.put({ kind: 'resource' }, repoPolicy)).rejects.toMatchObject({ code: 'POLICY_STORE_FAILED' });
    expect((await store.get({ kind: 'resource' }))?.document.id).toBe('affirming');
  });

  it('refuses a corrupt or tampered store file at open', async () => {
    await writeFile(path.join(dir, 'policies.json'), '{"format":1,"policies":[{"ref":{"kind":"resource"},"version":1,"updatedAt":"x","document":{"id":"p","type":"rego","kind":"resource","rule":"true"}}],"lastVersions":{}}');
    await expect(openFilePolicyStore({ dataDir: dir })).rejects.toMatchObject({ code: 'POLICY_STORE_FAILED' });
    await writeFile(path.join(dir, 'policies.json'), '{torn');
    await expect(openFilePolicyStore({ dataDir: dir })).rejects.toMatchObject({ code: 'POLICY_STORE_FAILED' });
  });

  it('backs the policy engine', async () => {
    const engine = createPolicyEngine({ store: await openFilePolicyStore({ dataDir: dir }) });
    await engine.putResourcePolicy(repoPolicy, { repository: 'a' });
    const reopened = createPolicyEngine({ store: await openFilePolicyStore({ dataDir: dir }) });
    expect(await reopened.decideRelease({ tokenClaims: {}, resourcePath: 'a/k/1' })).toMatchObject({ allow: true, policyId: 'repo-a', version: 1, scope: 'repository' });
    expect(JSON.parse(await readFile(path.join(dir, 'policies.json'), 'utf8')).format).toBe(1);
  });
});
