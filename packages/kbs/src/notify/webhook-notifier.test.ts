import { randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { mkdtemp, rm } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startRedis, type RedisServer } from '@keyhold/test-harness';
import { openEmbeddedState, openRedisState } from '../state/index.js';
import type { KbsEvent, KbsEventInput, KbsState } from '../state/ports.js';
import { WebhookNotifier, type WebhookTarget } from './webhook-notifier.js';
import { EVENT_ID_HEADER, EVENT_TYPE_HEADER, SIGNATURE_HEADER, signWebhook, verifyWebhookSignature } from './webhook-signature.js';

const SECRET = Buffer.from('a webhook secret of 32 bytes....');
const LIMITS = { maxSessions: 100, maxSessionBytes: 1 << 20 };

let redis: RedisServer;
let dir: string;
beforeAll(async () => {
  [redis, dir] = await Promise.all([startRedis({}), mkdtemp(path.join(tmpdir(), 'kh-webhook-'))]);
}, 30_000);
afterAll(async () => {
  await redis?.stop();
  await rm(dir, { recursive: true, force: true });
});

interface Delivery {
  readonly id: string;
  readonly type: string;
  readonly event: KbsEvent;
  readonly verified: boolean;
}

/** A local webhook receiver that checks every signature; `respond` decides each answer (or holds it). */
async function receiver(respond: (d: Delivery, n: number) => number | 'hold' = () => 200): Promise<{ url: string; deliveries: Delivery[]; ok: Delivery[]; close(): Promise<void> }> {
  const deliveries: Delivery[] = [];
  const ok: Delivery[] = [];
  const held: ServerResponse[] = [];
  const server: Server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      const event = JSON.parse(body) as KbsEvent;
      const d: Delivery = {
        id: String(req.headers[EVENT_ID_HEADER]),
        type: String(req.headers[EVENT_TYPE_HEADER]),
        event,
        verified: verifyWebhookSignature(SECRET, body, req.headers[SIGNATURE_HEADER] as string, Math.floor(Date.now() / 1000)),
      };
      deliveries.push(d);
      const answer = respond(d, deliveries.filter((x) => x.id === d.id).length);
      if (answer === 'hold') {
        held.push(res);
        return;
      }
      if (answer >= 200 && answer < 300) ok.push(d);
      res.writeHead(answer).end();
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/hook`,
    deliveries,
    ok,
    async close() {
      for (const r of held) r.destroy();
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    },
  };
}

const target = (url: string, events: string[] = ['node.banned', 'node.recovered'], name = 'hook-a'): WebhookTarget => ({ name, url, secret: SECRET, events: new Set(events) as WebhookTarget['events'], timeoutMs: 5000 });
const ev = (type: KbsEventInput['type'], node = randomBytes(32).toString('hex')): KbsEventInput => ({ type, at: new Date().toISOString(), node });

async function until(cond: () => boolean, timeoutMs = 10_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('webhook signatures', () => {
  it('verify over the exact body, within the replay window, with the right secret only', () => {
    const body = JSON.stringify({ id: '1-0', type: 'node.banned' });
    const t = 1_800_000_000;
    const h = signWebhook(SECRET, body, t);
    expect(h).toMatch(/^t=1800000000,v1=[0-9a-f]{64}$/);
    expect(verifyWebhookSignature(SECRET, body, h, t + 10)).toBe(true);
    // SECURITY: a changed body, another secret, a replay outside the window, garbage headers.
    expect(verifyWebhookSignature(SECRET, `${body} `, h, t)).toBe(false);
    expect(verifyWebhookSignature(Buffer.from('another secret of sixteen+ bytes'), body, h, t)).toBe(false);
    expect(verifyWebhookSignature(SECRET, body, h, t + 301)).toBe(false);
    expect(verifyWebhookSignature(SECRET, body, h, t - 301)).toBe(false);
    for (const bad of [undefined, '', 't=x,v1=00', `v1=${'0'.repeat(64)}`, h.replace(/v1=./, 'v1=g'), 'x'.repeat(2000)]) expect(verifyWebhookSignature(SECRET, body, bad, t)).toBe(false);
  });
});

describe('webhook notifier', () => {
  it('delivers the wanted events signed and in order, retries a 500 with backoff, at least once', async () => {
    const rx = await receiver((_d, n) => (n === 1 ? 500 : 200));
    const state = await openRedisState({ url: redis.url, keyPrefix: `wh${randomBytes(3).toString('hex')}`, sessionLimits: LIMITS });
    const n = new WebhookNotifier({ state, targets: [target(rx.url)], holder: 'r1', retryBaseMs: 50, leaseTtlMs: 3000, idleWaitMs: 200 });
    try {
      n.start();
      await until(() => n.active);
      const published = await state.events.publish([ev('node.banned'), ev('attestation'), ev('node.recovered')]);
      await until(() => rx.ok.length === 2);
      expect(rx.ok.map((d) => d.id)).toEqual([published[0]!.id, published[2]!.id]);
      expect(rx.deliveries.map((d) => d.id)).toEqual([published[0]!.id, published[0]!.id, published[2]!.id, published[2]!.id]);
      expect(rx.deliveries.every((d) => d.verified)).toBe(true);
      expect(rx.ok[0]!.event).toEqual(published[0]);
      expect(rx.ok[0]!.type).toBe('node.banned');
      // The cursor moves once the 2xx is in (just after the receiver answered).
      for (let i = 0; i < 100 && (await state.events.cursor('hook-a')) !== published[2]!.id; i++) await new Promise((r) => setTimeout(r, 20));
      expect(await state.events.cursor('hook-a')).toBe(published[2]!.id);
    } finally {
      await n.stop();
      await state.close();
      await rx.close();
    }
  });

  it('two replicas sharing Redis deliver each event once; a replica dying mid-delivery leaves it to the other', async () => {
    const prefix = `wh${randomBytes(3).toString('hex')}`;
    let holdFirst = true;
    const rx = await receiver(() => {
      if (holdFirst) {
        holdFirst = false;
        return 'hold';
      }
      return 200;
    });
    const [sa, sb] = [await openRedisState({ url: redis.url, keyPrefix: prefix, sessionLimits: LIMITS }), await openRedisState({ url: redis.url, keyPrefix: prefix, sessionLimits: LIMITS })];
    const opts = { targets: [target(rx.url, ['node.banned', 'node.stale', 'policy.changed'])], retryBaseMs: 50, leaseTtlMs: 1000, idleWaitMs: 200 };
    const a = new WebhookNotifier({ state: sa, holder: 'replica-a', ...opts });
    const b = new WebhookNotifier({ state: sb, holder: 'replica-b', ...opts });
    try {
      a.start();
      await until(() => a.active);
      b.start();
      // Both replicas publish; only the lease holder (a) delivers. Its first delivery hangs.
      const first = await sa.events.publish([ev('node.banned')]);
      await until(() => rx.deliveries.length === 1);
      expect(b.active).toBe(false);
      // Replica a dies: its connection to the state is gone (no renewal, no cursor move).
      await sa.close();
      await until(() => b.active, 10_000);
      const more = await sb.events.publish([ev('node.stale'), ev('attestation'), ev('policy.changed')]);
      await until(() => rx.ok.length === 3);
      // The held event is delivered again by b (at least once); every other event exactly once.
      expect(rx.ok.map((d) => d.id)).toEqual([first[0]!.id, more[0]!.id, more[2]!.id]);
      expect(rx.deliveries.map((d) => d.id)).toEqual([first[0]!.id, first[0]!.id, more[0]!.id, more[2]!.id]);
      expect(rx.deliveries.every((d) => d.verified)).toBe(true);
      for (let i = 0; i < 3; i++) await sb.events.publish([ev('node.banned')]);
      await until(() => rx.ok.length === 6);
      await new Promise((r) => setTimeout(r, 500));
      expect(new Set(rx.ok.map((d) => d.id)).size).toBe(rx.ok.length);
    } finally {
      await a.stop();
      await b.stop();
      await sb.close();
      await rx.close();
    }
  }, 30_000);

  it('embedded state: a durable event published while the notifier is down is delivered after a restart', async () => {
    const rx = await receiver();
    const dataDir = path.join(dir, 'embedded');
    const open = (): Promise<KbsState> => openEmbeddedState({ dataDir, sessionLimits: LIMITS, auditFile: null });
    let state = await open();
    const first = new WebhookNotifier({ state, targets: [target(rx.url)], holder: 'p1', idleWaitMs: 100 });
    first.start();
    await until(() => first.active);
    // The notifier records its starting position once it runs.
    await new Promise((r) => setTimeout(r, 300));
    await first.stop();
    const [kept] = await state.events.publish([ev('node.banned')], { durable: true });
    await state.events.publish([ev('attestation')]);
    await state.close();

    state = await open();
    const second = new WebhookNotifier({ state, targets: [target(rx.url)], holder: 'p2', idleWaitMs: 100 });
    try {
      second.start();
      await until(() => rx.ok.length === 1);
      expect(rx.ok[0]!.id).toBe(kept!.id);
      expect(rx.ok[0]!.verified).toBe(true);
    } finally {
      await second.stop();
      await state.close();
      await rx.close();
    }
  });
});
