/**
 * The console's events follower against a real HTTP server (node:http on loopback) speaking the
 * contract's SSE: resume with `after` across stream ends, heartbeats, silent and dropped
 * connections, and the answers that stop it (401, 403, endpoint missing).
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { generateKeyPairSync } from 'node:crypto';
import { importAdminKey } from '../auth/admin-key.js';
import { decodeUnverifiedJwt } from '../auth/decode-unverified.js';
import { AdminSession } from '../auth/session.js';
import { ApiError, AdminApi } from './admin-api.js';
import { followEvents, parseKbsEvent, type FollowStatus, type KbsEvent } from './follow-events.js';

const b = (o: unknown) => Buffer.from(JSON.stringify(o)).toString('base64url');
const TOKEN = `${b({ alg: 'EdDSA' })}.${b({ role: 'admin', exp: Math.floor(Date.now() / 1000) + 3600 })}.sig`;
const ev = (id: number, type = 'attestation') => ({ id: String(id), type, at: '2026-01-01T00:00:00Z', node: `n${id}`, status: 'affirming', policy: 'default@1' });
const frame = (e: { id: string; type: string }) => `id: ${e.id}\nevent: ${e.type}\ndata: ${JSON.stringify(e)}\n\n`;

let server: Server | undefined;
afterEach(async () => {
  server?.closeAllConnections();
  await new Promise((r) => server?.close(r) ?? r(undefined));
  server = undefined;
});

/** Serve `handler` for each request (numbered from 0); returns the console's API pointed at it and the requests seen. */
async function serve(handler: (n: number, req: IncomingMessage, res: ServerResponse) => void, session?: AdminSession) {
  const seen: { url: string; auth: string | undefined }[] = [];
  server = createServer((req, res) => {
    seen.push({ url: req.url ?? '', auth: req.headers.authorization });
    handler(seen.length - 1, req, res);
  });
  await new Promise<void>((r) => server!.listen(0, '127.0.0.1', r));
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  let unauthorized: string | undefined;
  const api = new AdminApi(session ?? AdminSession.withToken(TOKEN, []), (d) => (unauthorized = d), base);
  return { api, seen, unauthorized: () => unauthorized };
}

const sse = (res: ServerResponse) => res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-store' });

function follow(api: AdminApi, until: (events: KbsEvent[]) => boolean, extra: { idleMs?: number } = {}) {
  const ctl = new AbortController();
  const events: KbsEvent[] = [];
  const statuses: FollowStatus[] = [];
  const done = followEvents(api, {
    signal: ctl.signal,
    backoffMs: [20],
    resumeMs: 10,
    ...extra,
    onStatus: (s) => statuses.push(s),
    onEvent: (e) => {
      events.push(e);
      if (until(events)) ctl.abort();
    },
  });
  return { done, events, statuses, ctl };
}

describe('followEvents', () => {
  it('resumes after the last id when the KBS ends the stream (token expiry), without loss or repeats', async () => {
    const { api, seen } = await serve((n, _req, res) => {
      sse(res);
      if (n === 0) res.end(`: ping\n\n${frame(ev(1))}${frame(ev(2, 'denial'))}`);
      else res.end(frame(ev(3, 'release')));
    });
    const f = follow(api, (es) => es.length === 3);
    await f.done;
    expect(f.events.map((e) => `${e.id}:${e.type}`)).toEqual(['1:attestation', '2:denial', '3:release']);
    expect(seen.map((s) => s.url)).toEqual(['/kbs/v0/admin/events', '/kbs/v0/admin/events?after=2']);
    expect(seen.every((s) => s.auth === `Bearer ${TOKEN}`)).toBe(true);
    expect(f.statuses.filter((s) => s.kind === 'reconnecting').map((s) => (s as { why: string }).why)).toEqual(['the KBS ended the stream']);
  });

  it("a key session reconnects with a renewed token when the KBS ends the stream at the old token's expiry", async () => {
    let now = Date.now();
    const key = await importAdminKey(generateKeyPairSync('ed25519').privateKey.export({ format: 'pem', type: 'pkcs8' }).toString());
    const session = AdminSession.withKey(key, { role: 'admin', kid: 'root' }, [], () => now);
    const { api, seen } = await serve((n, _req, res) => {
      sse(res);
      if (n === 0) {
        // The KBS ends the stream when the token expires (5 minutes for minted tokens).
        now += 300_000;
        res.end(frame(ev(1)));
      } else {
        res.end(frame(ev(2)));
      }
    }, session);
    const f = follow(api, (es) => es.length === 2);
    await f.done;
    expect(seen.map((s) => s.url)).toEqual(['/kbs/v0/admin/events', '/kbs/v0/admin/events?after=1']);
    const [t1, t2] = seen.map((s) => decodeUnverifiedJwt(s.auth!.replace(/^Bearer /, '')).payload);
    expect(t2!['exp']).toBe((t1!['exp'] as number) + 300);
  });

  it('heartbeats keep a quiet stream open; a silent one is dropped and resumed from the last id', async () => {
    const { api, seen } = await serve((n, _req, res) => {
      sse(res);
      if (n === 0) {
        res.write(frame(ev(1)));
        // Heartbeats for longer than the idle limit, then silence (a dead peer).
        let pings = 0;
        const t = setInterval(() => (++pings > 6 ? clearInterval(t) : res.write(': ping\n\n')), 40);
      } else {
        res.end(frame(ev(2)));
      }
    });
    const started = Date.now();
    const f = follow(api, (es) => es.length === 2, { idleMs: 150 });
    await f.done;
    expect(Date.now() - started).toBeGreaterThan(240); // the pings held the first connection open past 150 ms
    expect(seen.map((s) => s.url)).toEqual(['/kbs/v0/admin/events', '/kbs/v0/admin/events?after=1']);
    expect(f.statuses).toContainEqual({ kind: 'reconnecting', inMs: 20, why: expect.stringMatching(/StreamIdle: no data or heartbeat/) });
  });

  it('retries a dropped connection and a 503, then carries on', async () => {
    const { api, seen } = await serve((n, _req, res) => {
      if (n === 0) return res.socket?.destroy();
      if (n === 1) return res.writeHead(503, { 'content-type': 'application/json' }).end('{"type":"StorageUnavailable","detail":"retry later"}');
      sse(res);
      res.end(frame(ev(9)));
    });
    const f = follow(api, (es) => es.length === 1);
    await f.done;
    expect(seen).toHaveLength(3);
    expect(f.events[0]?.id).toBe('9');
  });

  it('stops on 401 (the session ends), 403 and a missing endpoint, so the view can fall back', async () => {
    for (const [status, type, check] of [
      [401, 'AdminAuthAccess', (e: ApiError) => e.status === 401],
      [403, 'AdminForbidden', (e: ApiError) => e.status === 403],
      [404, 'InvalidRequestPath', (e: ApiError) => e.endpointMissing],
    ] as const) {
      const { api, seen, unauthorized } = await serve((_n, _req, res) => res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify({ type, detail: 'no' })));
      const err = await follow(api, () => false).done.catch((e: unknown) => e);
      expect(err).toBeInstanceOf(ApiError);
      expect(check(err as ApiError)).toBe(true);
      expect(seen).toHaveLength(1);
      expect(unauthorized() !== undefined).toBe(status === 401);
      server?.closeAllConnections();
      await new Promise((r) => server?.close(r));
      server = undefined;
    }
  });

  it('refuses an answer that is not an event stream', async () => {
    const { api } = await serve((_n, _req, res) => res.writeHead(200, { 'content-type': 'application/json' }).end('{"events":[]}'));
    await expect(follow(api, () => false).done).rejects.toMatchObject({ type: 'NotAStream' });
  });
});

describe('parseKbsEvent', () => {
  it('keeps the contract fields and skips frames that are not KbsEvents', () => {
    expect(parseKbsEvent({ event: 'x', data: JSON.stringify({ ...ev(1), extra: 'dropped' }) })).toEqual(ev(1));
    for (const data of ['not json', '[]', 'null', '{"id":1,"type":"x","at":"t"}', '{"id":"1","type":"x"}', '{"id":"1","type":"x","at":"t","reason":{}}', JSON.stringify({ ...ev(1), reason: 'x'.repeat(5000) })]) {
      expect(parseKbsEvent({ event: 'x', data }), data.slice(0, 40)).toBeUndefined();
    }
  });
});
