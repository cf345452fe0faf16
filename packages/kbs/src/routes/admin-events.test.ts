import { afterEach, describe, expect, it } from 'vitest';
import { adminCall, testKbs, type TestKbs } from '../continuous/test-kbs.test-support.js';
import type { KbsEvent, KbsEventInput } from '../state/ports.js';

let kbs: TestKbs | undefined;
afterEach(async () => {
  await kbs?.close();
  kbs = undefined;
});

const at = (): string => new Date().toISOString();
const SAMPLE: KbsEventInput[] = [
  { type: 'attestation', at: at(), node: 'a'.repeat(64), status: 'affirming', policy: 'default@0' },
  { type: 'release', at: at(), node: 'a'.repeat(64), repository: 'a', resource: 'a/key/1', policy: 'p@1' },
  { type: 'denial', at: at(), node: 'b'.repeat(64), repository: 'b', resource: 'b/key/1', policy: 'q@1', reason: 'policy rule evaluated to false' },
  { type: 'node.banned', at: at(), node: 'b'.repeat(64), reason: 'pcr07 does not match' },
  { type: 'policy.changed', at: at(), repository: 'a', policy: 'p@2' },
  { type: 'policy.changed', at: at(), policy: 'default@3' },
];

const ROLES = {
  ops: { rules: [{ methods: ['GET'], path: '/kbs/v0/admin/events' }] },
  'owner-a': { rules: [{ methods: ['GET'], path: '/kbs/v0/resources/.*' }], repositories: ['a'] },
};

async function setup(o: { sseHeartbeatMs?: number } = {}): Promise<{ k: TestKbs; published: readonly KbsEvent[] }> {
  const k = await testKbs({ identities: { ops: 'ops', alice: 'owner-a' }, roles: ROLES, ...(o.sseHeartbeatMs !== undefined ? { sseHeartbeatMs: o.sseHeartbeatMs } : {}) });
  kbs = k;
  return { k, published: await k.state.events.publish(SAMPLE) };
}

/** Read an SSE body until `done(text)` holds or the stream ends; returns the text and whether it ended. */
async function readStream(res: Response, done: (text: string) => boolean, timeoutMs = 5000): Promise<{ text: string; ended: boolean }> {
  const reader = res.body!.getReader();
  const dec = new TextDecoder();
  let text = '';
  const deadline = Date.now() + timeoutMs;
  try {
    while (!done(text)) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`stream timed out; got: ${text.slice(-500)}`);
      const r = await Promise.race([reader.read(), new Promise<'timeout'>((resolve) => setTimeout(() => resolve('timeout'), left))]);
      if (r === 'timeout') throw new Error(`stream timed out; got: ${text.slice(-500)}`);
      if (r.done) return { text, ended: true };
      text += dec.decode(r.value, { stream: true });
    }
    return { text, ended: false };
  } finally {
    await reader.cancel().catch(() => undefined);
  }
}

/** The frames (id, event, data) of an SSE text, comments left out. */
function frames(text: string): { id: string; event: string; data: KbsEvent }[] {
  return text
    .split('\n\n')
    .filter((f) => f.startsWith('id: '))
    .map((f) => {
      const [id, event, data] = f.split('\n');
      return { id: id!.slice(4), event: event!.slice(7), data: JSON.parse(data!.slice(6)) as KbsEvent };
    });
}

describe('GET /kbs/v0/admin/events?format=json', () => {
  it('answers the newest N without after, the next N after an id, oldest first', async () => {
    const { k, published } = await setup();
    const all = await adminCall(k, 'GET', '/kbs/v0/admin/events?format=json');
    expect(all.json.events.map((e: KbsEvent) => e.id)).toEqual(published.map((e) => e.id));
    expect(all.json.events[2]).toEqual({ ...SAMPLE[2], id: published[2]!.id });
    expect((await adminCall(k, 'GET', '/kbs/v0/admin/events?format=json&limit=2')).json.events.map((e: KbsEvent) => e.id)).toEqual(published.slice(-2).map((e) => e.id));
    expect((await adminCall(k, 'GET', `/kbs/v0/admin/events?format=json&after=${published[1]!.id}&limit=2`)).json.events.map((e: KbsEvent) => e.id)).toEqual(published.slice(2, 4).map((e) => e.id));
    for (const q of ['after=1-2-3', "after=0-0'", 'format=xml', 'format=json&limit=0', 'format=json&limit=1001', 'format=json&after=..']) {
      expect((await adminCall(k, 'GET', `/kbs/v0/admin/events?${q}`)).status, q).toBe(400);
    }
  });

  it('hides node events from roles that may not read nodes, and other repositories from limited owners', async () => {
    const { k } = await setup();
    const ops = await adminCall(k, 'GET', '/kbs/v0/admin/events?format=json', { token: await k.adminToken('ops') });
    expect(ops.json.events.map((e: KbsEvent) => e.type)).toEqual(['release', 'denial', 'policy.changed', 'policy.changed']);
    const alice = await k.adminToken('alice');
    const mine = await adminCall(k, 'GET', '/kbs/v0/resources/a/events?format=json', { token: alice });
    expect(mine.json.events.map((e: KbsEvent) => [e.type, e.repository])).toEqual([
      ['release', 'a'],
      ['policy.changed', 'a'],
    ]);
    // SECURITY: another owner's repository and the global stream are refused (cross-tenant).
    expect((await adminCall(k, 'GET', '/kbs/v0/resources/b/events?format=json', { token: alice })).status).toBe(403);
    expect((await adminCall(k, 'GET', '/kbs/v0/admin/events?format=json', { token: alice })).status).toBe(403);
    expect((await adminCall(k, 'GET', '/kbs/v0/admin/nodes', { token: alice })).status).toBe(403);
    // An unlimited admin may read any repository's stream.
    expect((await adminCall(k, 'GET', '/kbs/v0/resources/b/events?format=json')).json.events.map((e: KbsEvent) => e.type)).toEqual(['denial']);
    expect((await adminCall(k, 'GET', '/kbs/v0/admin/events?format=json', { token: 'x.y.z' })).status).toBe(401);
  });
});

describe('GET /kbs/v0/admin/events (server-sent events)', () => {
  it('replays after an id (query or Last-Event-ID), then streams live events, pings, and ends when the admin token expires', async () => {
    const { k, published } = await setup({ sseHeartbeatMs: 200 });
    const token = await k.adminToken('root', 3);
    const res = await k.app.request(`/kbs/v0/admin/events?after=${published[3]!.id}`, { headers: { authorization: `Bearer ${token}`, accept: 'text/event-stream' } });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/event-stream/);
    const reader = res.body!;
    const live: Promise<KbsEvent[]> = (async () => {
      await new Promise((r) => setTimeout(r, 300));
      k.events.emit({ type: 'node.unbanned', node: 'b'.repeat(64), reason: 'by root' });
      await k.events.flush();
      return [...(await k.state.events.latest(1))];
    })();
    const { text } = await readStream(new Response(reader), (t) => t.includes('event: node.unbanned') && t.includes(': ping'));
    const f = frames(text);
    const [liveEvent] = await live;
    expect(f.map((x) => x.id)).toEqual([published[4]!.id, published[5]!.id, liveEvent!.id]);
    expect(f.map((x) => x.event)).toEqual(['policy.changed', 'policy.changed', 'node.unbanned']);
    expect(f[0]!.data).toEqual({ ...SAMPLE[4], id: published[4]!.id });
    expect(text).toMatch(/^: connected\n\n/);

    // Last-Event-ID resumes the same way; the stream ends at the token's expiry.
    const again = await k.app.request('/kbs/v0/admin/events', { headers: { authorization: `Bearer ${token}`, 'last-event-id': published[4]!.id } });
    const t0 = Date.now();
    const rest = await readStream(again, () => false, 6000);
    expect(rest.ended).toBe(true);
    expect(Date.now() - t0).toBeLessThan(5000);
    expect(frames(rest.text).map((x) => x.id)).toEqual([published[5]!.id, liveEvent!.id]);
  });

  it('without after starts live; a limited owner streams only its repository', async () => {
    const { k } = await setup({ sseHeartbeatMs: 5000 });
    const alice = await k.adminToken('alice', 60);
    const res = await k.app.request('/kbs/v0/resources/a/events', { headers: { authorization: `Bearer ${alice}` } });
    const reading = readStream(res, (t) => t.includes('event: release'));
    await new Promise((r) => setTimeout(r, 200));
    k.events.emit({ type: 'release', repository: 'b', resource: 'b/key/2', policy: 'q@1' });
    k.events.emit({ type: 'node.banned', node: 'c'.repeat(64), reason: 'x' });
    k.events.emit({ type: 'release', repository: 'a', resource: 'a/key/2', policy: 'p@2' });
    const { text } = await reading;
    expect(frames(text).map((x) => [x.event, x.data.resource])).toEqual([['release', 'a/key/2']]);
  });
});
