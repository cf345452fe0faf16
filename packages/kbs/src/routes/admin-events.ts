/**
 * The event stream for owners (issue 13; /work/briefs/api-contract.md "Events"). Behind the admin
 * middleware.
 *
 *   GET /kbs/v0/admin/events[?after=<id>]              server-sent events (also `Last-Event-ID`)
 *   GET /kbs/v0/admin/events?format=json[&after=<id>][&limit=1..1000]   → {"events":[KbsEvent]}
 *   GET /kbs/v0/resources/<repository>/events[...]     the same, only `release`, `denial` and
 *       `policy.changed` events of <repository> (for repository-limited owners, whose ACL covers
 *       `/kbs/v0/resources/<repository>/...`)
 *
 * SSE frames: `id: <id>\nevent: <type>\ndata: <KbsEvent JSON>\n\n`; a `: ping` comment every 15 s;
 * with `after` (or `Last-Event-ID`) the retained events after it are replayed first, else the stream
 * starts with the next event. The stream ends when the caller's admin token expires (the client
 * signs in again and reconnects with `after`). The JSON form without `after` answers the newest
 * `limit` (default 100) events visible to the caller, oldest first.
 *
 * Visibility: node and attestation events only for callers whose role may read nodes
 * (`GET /kbs/v0/admin/nodes`); a repository-limited caller (or the per-repository path) sees only
 * `release`/`denial`/`policy.changed` events naming one of its repositories.
 */
import type { Context } from 'hono';
import { stream as honoStream } from 'hono/streaming';
import type { KbsEnv } from '../app-env.js';
import { KbsError } from '../errors.js';
import { isEventId } from '../state/event-record.js';
import type { KbsEvent } from '../state/ports.js';

/** Heartbeat interval of the stream unless the deps set another (tests). */
export const DEFAULT_HEARTBEAT_MS = 15_000;
const PAGE = 500;
/** Events scanned per JSON answer when a filter hides some (bounded work per request). */
const MAX_SCAN = 10_000;
const REPOSITORY_TYPES: ReadonlySet<string> = new Set(['release', 'denial', 'policy.changed']);
const NODE_TYPES = (t: string): boolean => t === 'attestation' || t.startsWith('node.');

type Visible = (e: KbsEvent) => boolean;

export function handleAdminEvents(c: Context<KbsEnv>): Promise<Response> {
  const principal = c.get('admin');
  const repos = principal?.repositories;
  let visible: Visible;
  if (repos !== undefined) {
    const set = new Set(repos);
    visible = (e) => REPOSITORY_TYPES.has(e.type) && e.repository !== undefined && set.has(e.repository);
  } else {
    // SECURITY: node identities and verdicts only for roles that may read node records (tenant isolation of the admin API).
    const nodes = principal?.allows?.('GET', '/kbs/v0/admin/nodes') ?? true;
    visible = nodes ? () => true : (e) => !NODE_TYPES(e.type);
  }
  return serveEvents(c, visible);
}

export function handleRepositoryEvents(c: Context<KbsEnv>): Promise<Response> {
  const repository = c.req.param('repository') ?? '';
  const repos = c.get('admin')?.repositories;
  // SECURITY: a limited owner reads only its own repositories' events (cross-tenant disclosure);
  // the ACL already checked the path, this re-checks at the source of the data.
  if (repos !== undefined && !repos.includes(repository)) throw new KbsError('ADMIN_FORBIDDEN', 'this role is limited to other repositories');
  return serveEvents(c, (e) => REPOSITORY_TYPES.has(e.type) && e.repository === repository);
}

async function serveEvents(c: Context<KbsEnv>, visible: Visible): Promise<Response> {
  const deps = c.get('deps');
  const events = deps.state.events;
  const q = c.req.query();
  const afterText = q['after'] ?? c.req.header('last-event-id');
  // SECURITY: the cursor reaches the backend (XRANGE bounds); only `<ms>-<seq>` passes (injection).
  if (afterText !== undefined && !isEventId(afterText)) throw new KbsError('BAD_REQUEST', 'after must be an event id (<ms>-<seq>)');
  if (q['format'] !== undefined && q['format'] !== 'json') throw new KbsError('BAD_REQUEST', 'format must be json (or absent for server-sent events)');
  if (q['format'] === 'json') {
    let limit = 100;
    if (q['limit'] !== undefined) {
      if (!/^[1-9][0-9]{0,3}$/.test(q['limit']) || Number(q['limit']) > 1000) throw new KbsError('BAD_REQUEST', 'limit must be an integer in 1..1000');
      limit = Number(q['limit']);
    }
    return c.json({ events: afterText === undefined ? (await events.latest(limit)).filter(visible) : await readVisible(c, afterText, limit, visible) });
  }

  const heartbeatMs = deps.continuous?.sseHeartbeatMs ?? DEFAULT_HEARTBEAT_MS;
  const nowMs = (): number => deps.now?.() ?? Date.now();
  const endAt = c.get('admin')?.expiresAtMs ?? nowMs() + 24 * 3600_000;
  // Without `after` the stream starts live: from the newest event now.
  let cursor = afterText ?? (await events.latest(1))[0]?.id;
  const log = c.get('log');
  c.header('content-type', 'text/event-stream');
  c.header('cache-control', 'no-cache');
  c.header('x-accel-buffering', 'no');
  return honoStream(c, async (stream) => {
    const ac = new AbortController();
    stream.onAbort(() => ac.abort());
    try {
      await stream.write(': connected\n\n');
      let lastWrite = nowMs();
      while (!ac.signal.aborted && nowMs() < endAt) {
        const page = await events.read({ ...(cursor !== undefined ? { after: cursor } : {}), limit: PAGE });
        for (const e of page) {
          cursor = e.id;
          if (!visible(e)) continue;
          await stream.write(`id: ${e.id}\nevent: ${e.type}\ndata: ${JSON.stringify(e)}\n\n`);
          lastWrite = nowMs();
        }
        if (page.length === PAGE) continue;
        if (nowMs() - lastWrite >= heartbeatMs) {
          await stream.write(': ping\n\n');
          lastWrite = nowMs();
        }
        const wait = Math.min(heartbeatMs - (nowMs() - lastWrite), endAt - nowMs());
        if (wait > 0) await events.waitForNew(cursor, wait, ac.signal);
      }
    } catch (err) {
      // The backend failed mid-stream: end it; the client reconnects with `after` (its last id).
      log.warn({ code: (err as { code?: string }).code }, 'event stream ended by an error');
    }
  });
}

/** Up to `limit` visible events after `after`, scanning at most MAX_SCAN events. */
async function readVisible(c: Context<KbsEnv>, after: string, limit: number, visible: Visible): Promise<KbsEvent[]> {
  const events = c.get('deps').state.events;
  const out: KbsEvent[] = [];
  let cursor = after;
  for (let scanned = 0; scanned < MAX_SCAN && out.length < limit; ) {
    const page = await events.read({ after: cursor, limit: PAGE });
    for (const e of page) {
      if (visible(e)) out.push(e);
      if (out.length >= limit) break;
    }
    scanned += page.length;
    if (page.length < PAGE) break;
    cursor = page[page.length - 1]!.id;
  }
  return out;
}
