import { describe, expect, it } from 'vitest';
import { createPolicyEngine } from './engine.js';
import { createMemoryPolicyStore, parsePolicyStoreSnapshot } from './store.js';
import { DENY_ALL_RESOURCE_POLICY } from './defaults.js';
import { PolicyCompileError, PolicyError } from './errors.js';

const claims = (status: string, workload?: string) => ({
  submods: { cpu0: { 'ear.status': status, 'ear.veraison.annotated-evidence': { init_data_claims: workload === undefined ? {} : { workload_id: workload } } } },
});
const resource = (id: string, rule: string) => ({ id, type: 'cel', kind: 'resource', rule });

describe('createPolicyEngine', () => {
  it('uses the built-in defaults until policies are stored', async () => {
    const engine = createPolicyEngine({ store: createMemoryPolicyStore() });
    expect(await engine.decideRelease({ tokenClaims: claims('affirming'), resourcePath: 'a/b/c' })).toEqual({ allow: true, policyId: 'affirming', version: 0, scope: 'default' });
    expect((await engine.decideRelease({ tokenClaims: claims('warning'), resourcePath: 'a/b/c' })).allow).toBe(false);
    expect((await engine.appraise({ claims: { tpm: { ak_public: 'x' } } })).status).toBe('affirming');
    await expect(engine.appraise({ claims: {}, policyId: 'nope' })).rejects.toMatchObject({ code: 'POLICY_NOT_FOUND' });
  });

  it('refuses an invalid policy at upload and stores nothing', async () => {
    const store = createMemoryPolicyStore();
    const engine = createPolicyEngine({ store });
    await expect(engine.putResourcePolicy(resource('bad', 'ear.status == '))).rejects.toBeInstanceOf(PolicyCompileError);
    expect(await store.list()).toEqual([]);
  });

  it('keeps two owners\u2019 repository-scoped policies from affecting each other', async () => {
    const engine = createPolicyEngine({ store: createMemoryPolicyStore() });
    // Owner A allows only workload "a"; owner B denies everything in its repository.
    await engine.putResourcePolicy(resource('owner-a', 'ear.status == "affirming" && init_data_claims.workload_id == "a"'), { repository: 'repo-a' });
    await engine.putResourcePolicy(DENY_ALL_RESOURCE_POLICY, { repository: 'repo-b' });
    await engine.putResourcePolicy(resource('global-allow', 'true'));

    const a = await engine.decideRelease({ tokenClaims: claims('affirming', 'a'), resourcePath: 'repo-a/key/1' });
    expect(a).toMatchObject({ allow: true, policyId: 'owner-a', version: 1, scope: 'repository' });
    expect((await engine.decideRelease({ tokenClaims: claims('affirming', 'b'), resourcePath: 'repo-a/key/1' })).allow).toBe(false);
    // B's deny-all does not reach A's repository, and A's rule does not reach B's.
    expect(await engine.decideRelease({ tokenClaims: claims('affirming', 'a'), resourcePath: 'repo-b/key/1' })).toMatchObject({ allow: false, policyId: 'deny-all', scope: 'repository' });
    // A third repository falls back to the global policy, not to either owner's.
    expect(await engine.decideRelease({ tokenClaims: claims('warning'), resourcePath: 'repo-c/key/1' })).toMatchObject({ allow: true, policyId: 'global-allow', scope: 'global' });
    // Replacing B's policy leaves A's version untouched.
    await engine.putResourcePolicy(resource('b2', 'true'), { repository: 'repo-b' });
    expect((await engine.resourcePolicy('repo-a')).policy.version).toBe(1);
    expect((await engine.resourcePolicy('repo-b')).policy).toMatchObject({ id: 'b2', version: 2 });
  });

  it('versions policies, never reusing a version after delete, and detects concurrent updates', async () => {
    const store = createMemoryPolicyStore();
    const engine = createPolicyEngine({ store });
    const doc = { id: 'tpm', type: 'cel', kind: 'attestation', rules: { status: '"affirming"' } };
    expect((await engine.putAttestationPolicy(doc, { updatedBy: 'alice' })).version).toBe(1);
    expect((await engine.putAttestationPolicy(doc, { expectedVersion: 1 })).version).toBe(2);
    await expect(engine.putAttestationPolicy(doc, { expectedVersion: 1 })).rejects.toMatchObject({ code: 'POLICY_VERSION_CONFLICT' });
    expect(await engine.appraise({ claims: {}, policyId: 'tpm' })).toMatchObject({ status: 'affirming', policyId: 'tpm', version: 2 });
    expect(await engine.deletePolicy({ kind: 'attestation', id: 'tpm' })).toBe(true);
    expect((await engine.putAttestationPolicy(doc)).version).toBe(3);
    // A snapshot round-trips through validation (what the file store persists).
    const again = createMemoryPolicyStore({ snapshot: parsePolicyStoreSnapshot(JSON.parse(JSON.stringify(store.snapshot()))) });
    expect((await again.get({ kind: 'attestation', id: 'tpm' }))?.version).toBe(3);
  });

  it('refuses mismatched slots and bad repository names', async () => {
    const store = createMemoryPolicyStore();
    const doc = { id: 'x', type: 'cel', kind: 'attestation', rules: { status: '"none"' } } as const;
    await expect(store.put({ kind: 'resource' }, doc)).rejects.toBeInstanceOf(PolicyError);
    await expect(store.put({ kind: 'attestation', id: 'y' }, doc)).rejects.toThrow(/does not match/);
    await expect(store.get({ kind: 'resource', repository: '../etc' })).rejects.toMatchObject({ code: 'POLICY_INVALID_DOCUMENT' });
    expect(() => parsePolicyStoreSnapshot({ format: 1, policies: [{ ref: { kind: 'resource' }, version: 1, updatedAt: 'x', document: doc }], lastVersions: {} })).toThrow(
      /corrupt/,
    );
  });
});
