import { afterEach, describe, expect, it } from 'vitest';
import { createPolicyEngine } from '@keyhold/policy';
import { MeasuredBootExtension } from '../attestation/tpm/measured-boot-extension.js';
import { celResourcePolicy } from '../release/cel-resource-policy.js';
import type { ResourcePolicy } from '../release/resource-policy.js';
import type { KbsEvent } from '../state/ports.js';
import { claimAt } from '../token/ear-claims.js';
import { StaleSweeper } from './stale-sweeper.js';
import { adminCall, attest, getResource, SECRET_TEXT, testKbs, trustedAkNode, type TestKbs } from './test-kbs.test-support.js';

let kbs: TestKbs | undefined;
afterEach(async () => {
  await kbs?.close();
  kbs = undefined;
});

async function events(k: TestKbs): Promise<KbsEvent[]> {
  await k.events.flush();
  return [...(await k.state.events.read({ limit: 1000 }))];
}

/** A PCR 7 reference no software TPM holds: the next appraisal is contraindicated. */
const WRONG_PCR7 = { tpm_pcr07: ['ff'.repeat(32)] };

describe('node records on every attestation', () => {
  it('records an ak: node (first seen, last seen, last attested, verdict) and lists it with its SPIFFE ID', async () => {
    kbs = await testKbs();
    const node = await trustedAkNode(kbs);
    const first = await attest(kbs, node);
    expect(first.status).toBe(200);
    const r1 = await kbs.state.nodes.get(node.nodeId);
    expect(r1).toMatchObject({ nodeId: node.nodeId, akName: null, state: 'active', lastVerdict: { status: 'affirming', policy: 'default@0' }, version: 1 });
    expect(r1!.lastAttestedAt).toBe(r1!.lastSeenAt);
    expect(r1!.ekHash).toBeUndefined();
    kbs.advance(1000);
    expect((await attest(kbs, node)).status).toBe(200);
    const r2 = await kbs.state.nodes.get(node.nodeId);
    expect(r2!.version).toBe(2);
    expect(r2!.firstSeenAt).toBe(r1!.firstSeenAt);
    expect(Date.parse(r2!.lastAttestedAt!)).toBeGreaterThan(Date.parse(r1!.lastAttestedAt!));

    // The token names the node; the admin API shows the record with its SPIFFE ID.
    const list = await adminCall(kbs, 'GET', '/kbs/v0/admin/nodes');
    expect(list.json.nodes).toEqual([expect.objectContaining({ nodeId: node.nodeId, state: 'active', spiffeId: `spiffe://example.org/keyhold/node/ak/${node.nodeId.slice(3)}`, may: { unban: true, revoke: true, remove: true } })]);
    const one = await adminCall(kbs, 'GET', `/kbs/v0/admin/nodes/${node.nodeId}`);
    expect(one.json.node).toMatchObject({ nodeId: node.nodeId, state: 'active' });
    expect(one.json.history).toEqual([
      expect.objectContaining({ kind: 'attest', status: 'affirming', policy: 'default@0' }),
      expect.objectContaining({ kind: 'attest', status: 'affirming', policy: 'default@0' }),
    ]);
    expect((await events(kbs)).filter((e) => e.type === 'attestation')).toEqual([
      expect.objectContaining({ node: node.nodeId, status: 'affirming', policy: 'default@0', tee: 'tpm', replica: 'test-replica' }),
      expect.objectContaining({ node: node.nodeId, status: 'affirming' }),
    ]);
  });

  it('attributes nothing to a node before its identity is proven (an AK the owner does not list)', async () => {
    kbs = await testKbs();
    const node = await trustedAkNode(kbs);
    await kbs.state.referenceValues.set({ trusted_ak: [] });
    const r = await attest(kbs, node);
    expect({ status: r.status, type: r.type }).toEqual({ status: 401, type: 'AttestationFailed' });
    expect((await kbs.state.nodes.list()).nodes).toEqual([]);
    expect(await events(kbs)).toEqual([expect.objectContaining({ type: 'attestation', status: 'failed' })]);
    expect((await events(kbs))[0]!.node).toBeUndefined();
  });
});

describe('bans', () => {
  it('a contraindicated appraisal bans the node: NodeBanned at /attest, its earlier token and session release nothing; unban, then it recovers', async () => {
    kbs = await testKbs();
    const node = await trustedAkNode(kbs);
    const good = await attest(kbs, node);
    expect((await getResource(kbs, { token: good.token! })).status).toBe(200);

    await kbs.state.referenceValues.set(WRONG_PCR7);
    const banned = await attest(kbs, node);
    expect({ status: banned.status, type: banned.type }).toEqual({ status: 403, type: 'NodeBanned' });
    expect(banned.detail).toMatch(/pcr07/);
    expect(banned.token).toBeUndefined();
    const rec = await kbs.state.nodes.get(node.nodeId);
    expect(rec).toMatchObject({ state: 'banned', banned: { reason: expect.stringMatching(/pcr07/) }, lastVerdict: { status: 'contraindicated' } });

    // SECURITY: the token and the attested session issued before the ban are refused at once.
    for (const auth of [{ token: good.token! }, { cookie: good.cookie! }]) {
      const r = await getResource(kbs, auth);
      expect({ status: r.status, type: r.type }).toEqual({ status: 403, type: 'NodeBanned' });
      expect(r.body).not.toContain(SECRET_TEXT);
    }
    // Even with the reference restored, a banned node gets no token until the owner lifts the ban.
    await kbs.state.referenceValues.delete('tpm_pcr07');
    const still = await attest(kbs, node);
    expect({ status: still.status, type: still.type }).toEqual({ status: 403, type: 'NodeBanned' });
    expect((await kbs.state.nodes.get(node.nodeId))!.lastVerdict?.status).toBe('affirming');

    const listed = await adminCall(kbs, 'GET', '/kbs/v0/admin/nodes?state=banned');
    expect(listed.json.nodes.map((n: { nodeId: string }) => n.nodeId)).toEqual([node.nodeId]);
    const unban = await adminCall(kbs, 'POST', `/kbs/v0/admin/nodes/${node.nodeId}/unban`, { body: {} });
    expect(unban.status).toBe(200);
    expect(unban.json).toMatchObject({ nodeId: node.nodeId, state: 'active' });
    expect(unban.json.banned).toBeUndefined();
    const audited = (await kbs.audit.query({ node: node.nodeId })).filter((r) => r.kind === 'admin');
    expect(audited).toEqual([expect.objectContaining({ fields: expect.objectContaining({ action: 'node.unban', actor: 'root', verdict: 'ok' }) })]);

    const back = await attest(kbs, node);
    expect(back.status).toBe(200);
    expect((await getResource(kbs, { token: back.token! })).status).toBe(200);
    const types = (await events(kbs)).filter((e) => e.type.startsWith('node.')).map((e) => [e.type, e.node]);
    expect(types).toEqual([
      ['node.banned', node.nodeId],
      ['node.unbanned', node.nodeId],
      ['node.recovered', node.nodeId],
    ]);
    // Unbanning a node that is not banned changes nothing; an unknown node is 404; a bad id 400.
    expect((await adminCall(kbs, 'POST', `/kbs/v0/admin/nodes/${node.nodeId}/unban`)).json).toMatchObject({ state: 'active' });
    expect((await adminCall(kbs, 'POST', `/kbs/v0/admin/nodes/${'a'.repeat(64)}/unban`)).status).toBe(404);
    for (const bad of ['ak:zz', 'ak:' + 'a'.repeat(63), 'ak:' + 'a'.repeat(65), 'AK:x', 'node']) expect((await adminCall(kbs, 'POST', `/kbs/v0/admin/nodes/${bad}/unban`)).status, bad).toBe(400);
  });

  it('a ban written by another replica wins over this replica\'s cached record (the swap fails, the record is read again)', async () => {
    kbs = await testKbs();
    const node = await trustedAkNode(kbs);
    expect((await attest(kbs, node)).status).toBe(200);
    expect(kbs.deps.continuous!.nodeCache!.get(node.nodeId)?.version).toBe(1);
    const cur = (await kbs.state.nodes.get(node.nodeId))!;
    const { version, ...rest } = cur;
    await kbs.state.nodes.compareAndSwap(node.nodeId, version, { ...rest, state: 'banned', banned: { at: new Date().toISOString(), reason: 'banned elsewhere' } });
    const r = await attest(kbs, node);
    expect({ status: r.status, type: r.type }).toEqual({ status: 403, type: 'NodeBanned' });
    expect(r.detail).toMatch(/banned elsewhere/);
    expect(await kbs.state.nodes.get(node.nodeId)).toMatchObject({ state: 'banned', version: 3, lastVerdict: { status: 'affirming' } });
    expect((await events(kbs)).filter((e) => e.type === 'node.banned')).toEqual([]);
  });

  it('evidence refused after the node was identified bans it too (e.g. a required event log withheld)', async () => {
    kbs = await testKbs({ extensions: [new MeasuredBootExtension({ requireEventLog: true, allowSha1: false })] });
    const node = await trustedAkNode(kbs);
    await kbs.state.nodes.compareAndSwap(node.nodeId, 0, { nodeId: node.nodeId, akName: null, firstSeenAt: new Date().toISOString(), state: 'active' });
    const r = await attest(kbs, node);
    expect({ status: r.status, type: r.type }).toEqual({ status: 403, type: 'NodeBanned' });
    expect(r.detail).toMatch(/event_log/);
    expect(await kbs.state.nodes.get(node.nodeId)).toMatchObject({ state: 'banned', lastVerdict: { status: 'failed', reason: expect.stringMatching(/event_log/) } });
    const audit = await kbs.audit.query({ node: node.nodeId, kind: 'attest' });
    expect(audit).toEqual([expect.objectContaining({ fields: expect.objectContaining({ verdict: 'failed' }) })]);
  });

  it('with ban_on_failure = false a failure is recorded but bans nothing, and the token stays contraindicated', async () => {
    kbs = await testKbs({ settings: { banOnFailure: false } });
    const node = await trustedAkNode(kbs);
    await kbs.state.referenceValues.set(WRONG_PCR7);
    const r = await attest(kbs, node);
    expect(r.status).toBe(200);
    expect(await kbs.state.nodes.get(node.nodeId)).toMatchObject({ state: 'active', lastVerdict: { status: 'contraindicated' } });
    expect((await kbs.state.nodes.get(node.nodeId))!.lastAttestedAt).toBeUndefined();
    const res = await getResource(kbs, { token: r.token! });
    expect({ status: res.status, type: res.type }).toEqual({ status: 403, type: 'PolicyDeny' });
    expect((await events(kbs)).map((e) => e.type)).toEqual(['attestation', 'denial']);
  });

  it('a revoked ak: node gets no token; revoke emits node.revoked once', async () => {
    kbs = await testKbs();
    const node = await trustedAkNode(kbs);
    expect((await attest(kbs, node)).status).toBe(200);
    expect((await adminCall(kbs, 'POST', `/kbs/v0/admin/nodes/${node.nodeId}/revoke`)).json).toMatchObject({ state: 'revoked', revoked: true });
    expect((await adminCall(kbs, 'POST', `/kbs/v0/admin/nodes/${node.nodeId}/revoke`)).status).toBe(200);
    const r = await attest(kbs, node);
    expect({ status: r.status, type: r.type }).toEqual({ status: 403, type: 'NodeRevoked' });
    expect((await events(kbs)).filter((e) => e.type === 'node.revoked')).toHaveLength(1);
    expect((await adminCall(kbs, 'DELETE', `/kbs/v0/admin/nodes/${node.nodeId}`)).status).toBe(204);
    expect((await attest(kbs, node)).status).toBe(200);
  });
});

describe('staleness and freshness', () => {
  it('computes stale at read time, filters by it, announces node.stale once per staleness (one sweeper wins), and recovery after', async () => {
    kbs = await testKbs({ settings: { staleAfterMs: 60_000, sweepIntervalMs: 1000 } });
    const a = await trustedAkNode(kbs);
    const b = await trustedAkNode(kbs);
    expect((await attest(kbs, a)).status).toBe(200);
    expect((await attest(kbs, b)).status).toBe(200);
    kbs.advance(61_000);
    expect((await attest(kbs, b)).status).toBe(200);
    const stale = await adminCall(kbs, 'GET', '/kbs/v0/admin/nodes?state=stale');
    expect(stale.json.nodes.map((n: { nodeId: string }) => n.nodeId)).toEqual([a.nodeId]);
    expect((await adminCall(kbs, 'GET', '/kbs/v0/admin/nodes?state=active')).json.nodes.map((n: { nodeId: string }) => n.nodeId)).toEqual([b.nodeId]);
    expect((await adminCall(kbs, 'GET', `/kbs/v0/admin/nodes/${a.nodeId}`)).json.node.state).toBe('stale');
    // Stored state stays active: staleness is never written as a state.
    expect((await kbs.state.nodes.get(a.nodeId))!.state).toBe('active');

    const k = kbs;
    const sweepers = ['r1', 'r2'].map((holder) => new StaleSweeper({ state: k.state, events: k.events, settings: k.deps.continuous!.settings, holder, now: k.now }));
    const counts = await Promise.all(sweepers.map((s) => s.sweep()));
    expect(counts.reduce((x, y) => x + y, 0)).toBe(1);
    expect(await sweepers[0]!.sweep()).toBe(0);
    await Promise.all(sweepers.map((s) => s.stop()));
    expect(await sweepers[1]!.sweep()).toBe(0);
    const staleEvents = (await events(kbs)).filter((e) => e.type === 'node.stale');
    expect(staleEvents).toEqual([expect.objectContaining({ node: a.nodeId, reason: expect.stringMatching(/^no affirming attestation since /) })]);

    expect((await attest(kbs, a)).status).toBe(200);
    expect((await events(kbs)).filter((e) => e.type === 'node.recovered').map((e) => e.node)).toEqual([a.nodeId]);
    expect((await adminCall(kbs, 'GET', `/kbs/v0/admin/nodes/${a.nodeId}`)).json.node.state).toBe('active');
  });

  it('resource policies see evidence.last_attested_age_s and node_state read from the node record (CEL)', async () => {
    let seen: Record<string, unknown> | undefined;
    const engineHolder: { policy?: ResourcePolicy } = {};
    const spy: ResourcePolicy = {
      async evaluate(input) {
        seen = input.claims;
        return engineHolder.policy!.evaluate(input);
      },
    };
    kbs = await testKbs({ resourcePolicy: spy, settings: { staleAfterMs: 3600_000 } });
    const engine = createPolicyEngine({ store: kbs.state.policies });
    engineHolder.policy = celResourcePolicy(engine);
    await engine.putResourcePolicy({ id: 'fresh', type: 'cel', kind: 'resource', rule: 'ear.status == "affirming" && evidence.last_attested_age_s < 120 && evidence.node_state == "active"' }, { repository: 'default' });
    const node = await trustedAkNode(kbs);
    const r = await attest(kbs, node);
    expect((await getResource(kbs, { token: r.token! })).status).toBe(200);
    expect(claimAt(seen, ['submods', 'cpu0', 'ear.veraison.annotated-evidence', 'last_attested_age_s'])).toBe(0);
    kbs.advance(180_000);
    const old = await getResource(kbs, { token: r.token! });
    expect({ status: old.status, type: old.type }).toEqual({ status: 403, type: 'PolicyDeny' });
    expect(claimAt(seen, ['submods', 'cpu0', 'ear.veraison.annotated-evidence', 'last_attested_age_s'])).toBe(180);
    // The token itself is not changed.
    expect(JSON.parse(Buffer.from(r.token!.split('.')[1]!, 'base64url').toString()).submods.cpu0['ear.veraison.annotated-evidence'].last_attested_age_s).toBeUndefined();
  });
});
