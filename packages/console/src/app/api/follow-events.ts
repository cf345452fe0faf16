import { ApiError, type AdminApi } from './admin-api.js';
import type { SseEvent } from './sse.js';

/** `KbsEvent` of the KBS's events stream (API contract): names and verdicts, never secret values or tokens. */
export interface KbsEvent {
  readonly id: string;
  readonly type: string;
  readonly at: string;
  readonly replica?: string;
  readonly node?: string;
  readonly spiffeId?: string;
  readonly tee?: string;
  readonly repository?: string;
  readonly resource?: string;
  readonly policy?: string;
  readonly status?: string;
  readonly reason?: string;
}

export type FollowStatus =
  | { readonly kind: 'connecting' }
  | { readonly kind: 'live' }
  | { readonly kind: 'reconnecting'; readonly inMs: number; readonly why: string };

export interface FollowOptions {
  /** The stream: `/kbs/v0/admin/events` (default) or a repository's `/kbs/v0/resources/<r>/events`. */
  readonly path?: string;
  readonly onEvent: (e: KbsEvent) => void;
  readonly onStatus: (s: FollowStatus) => void;
  readonly signal: AbortSignal;
  /** Resume after this event id (e.g. the newest one already shown). */
  readonly after?: string;
  /** Drop a connection that sends nothing, not even the `: ping` heartbeat, for this long. */
  readonly idleMs?: number;
  /** Waits before reconnecting after consecutive failures (the last one repeats). */
  readonly backoffMs?: readonly number[];
  /** Wait before reconnecting after the KBS ended a stream normally (the admin token's expiry). */
  readonly resumeMs?: number;
}

/** Three missed 15-second heartbeats. */
export const DEFAULT_IDLE_MS = 45_000;
const DEFAULT_BACKOFF_MS = [1000, 2000, 5000, 10_000, 30_000] as const;
const MAX_FIELD_CHARS = 4096;

const OPTIONAL_FIELDS = ['replica', 'node', 'spiffeId', 'tee', 'repository', 'resource', 'policy', 'status', 'reason'] as const;

/** The event in a frame, or undefined when the frame is not a well-formed `KbsEvent` (then it is skipped). */
export function parseKbsEvent(frame: SseEvent): KbsEvent | undefined {
  let v: unknown;
  try {
    v = JSON.parse(frame.data);
  } catch {
    return undefined;
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return undefined;
  const o = v as Record<string, unknown>;
  const str = (x: unknown): x is string => typeof x === 'string' && x.length <= MAX_FIELD_CHARS;
  if (!str(o['id']) || !str(o['type']) || !str(o['at'])) return undefined;
  const out: Record<string, string> = { id: o['id'], type: o['type'], at: o['at'] };
  for (const f of OPTIONAL_FIELDS) {
    const x = o[f];
    if (x === undefined) continue;
    if (!str(x)) return undefined;
    out[f] = x;
  }
  return out as unknown as KbsEvent;
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const t = setTimeout(done, ms);
    function done() {
      clearTimeout(t);
      signal.removeEventListener('abort', done);
      resolve();
    }
    signal.addEventListener('abort', done, { once: true });
  });
}

/**
 * Errors another attempt cannot fix: the session ended (401), the role may not (403), no such
 * endpoint, a bad request, an answer that is not a stream. Retried: network failures and silent
 * connections (status 0), 408, 429 and 5xx.
 */
function isFinal(err: unknown): boolean {
  if (!(err instanceof ApiError)) return true;
  return !(err.status === 0 || err.status === 408 || err.status === 429 || err.status >= 500);
}

/**
 * Follow `GET /kbs/v0/admin/events` until `signal` aborts. Each connection asks for the events after
 * the last id received, so nothing is lost or repeated across reconnects: when the KBS ends the stream
 * (it does when the admin token expires) the next call carries a fresh token (a key session renews
 * it; a pasted token's session signs out instead); a dropped or silent connection (no heartbeat for
 * `idleMs`), a 5xx or 429 is retried with backoff. Rejects with the ApiError on 401 (the session has
 * already ended), 403 or a missing endpoint, so the caller can fall back.
 */
export async function followEvents(api: AdminApi, opts: FollowOptions): Promise<void> {
  const backoff = opts.backoffMs ?? DEFAULT_BACKOFF_MS;
  let after = opts.after;
  let failures = 0;
  while (!opts.signal.aborted) {
    opts.onStatus({ kind: 'connecting' });
    let why: string;
    try {
      const query = after !== undefined ? `?after=${encodeURIComponent(after)}` : '';
      await api.stream(
        `${opts.path ?? '/kbs/v0/admin/events'}${query}`,
        (frame) => {
          if (frame.id !== undefined) after = frame.id;
          const e = parseKbsEvent(frame);
          if (e !== undefined) opts.onEvent(e);
        },
        opts.signal,
        {
          idleMs: opts.idleMs ?? DEFAULT_IDLE_MS,
          onOpen: () => {
            failures = 0;
            opts.onStatus({ kind: 'live' });
          },
        },
      );
      why = 'the KBS ended the stream';
    } catch (err) {
      if (opts.signal.aborted) return;
      if (isFinal(err)) throw err;
      failures += 1;
      why = err instanceof Error ? err.message : String(err);
    }
    if (opts.signal.aborted) return;
    const wait = failures === 0 ? (opts.resumeMs ?? 250) : (backoff[Math.min(failures, backoff.length) - 1] ?? 1000);
    opts.onStatus({ kind: 'reconnecting', inMs: wait, why });
    await sleep(wait, opts.signal);
  }
}
