import type { AdminSession } from '../auth/session.js';
import { SseParser, type SseEvent } from './sse.js';

/** An error answer of the KBS (Trustee `{"type","detail"}`), or a network failure (status 0). */
export class ApiError extends Error {
  override readonly name = 'ApiError';
  constructor(
    readonly status: number,
    readonly type: string,
    readonly detail: string,
  ) {
    super(`${status} ${type}: ${detail}`);
  }
  /** 404 for an endpoint this KBS does not have (vs. a missing resource on an endpoint it has). */
  get endpointMissing(): boolean {
    return this.status === 404 && /InvalidRequestPath$/.test(this.type);
  }
}

const MAX_ERROR_CHARS = 2000;

async function errorOf(res: Response): Promise<ApiError> {
  let type = `HTTP ${res.status}`;
  let detail = res.statusText;
  try {
    const body = (await res.json()) as { type?: unknown; detail?: unknown };
    if (typeof body.type === 'string') type = body.type.slice(0, 200);
    if (typeof body.detail === 'string') detail = body.detail.slice(0, MAX_ERROR_CHARS);
  } catch {
    // not a Trustee error body
  }
  return new ApiError(res.status, type, detail);
}

/**
 * The admin API as the CLI uses it: every call carries the session's admin token; the KBS applies
 * the role's ACL and repository limits. A 401 (token missing, expired, refused) ends the session.
 */
export class AdminApi {
  constructor(
    private readonly session: AdminSession,
    private readonly onUnauthorized: (detail: string) => void,
    private readonly base = '',
  ) {}

  async #fetch(path: string, init: RequestInit = {}): Promise<Response> {
    const token = await this.session.token();
    if (token === undefined) {
      this.onUnauthorized('Your admin token expired.');
      throw new ApiError(401, 'AdminAuthAccess', 'admin token expired');
    }
    let res: Response;
    try {
      res = await fetch(`${this.base}${path}`, {
        ...init,
        headers: { ...(init.headers as Record<string, string> | undefined), authorization: `Bearer ${token}` },
        credentials: 'omit',
        cache: 'no-store',
        redirect: 'error',
      });
    } catch (err) {
      if ((err as Error).name === 'AbortError') throw err;
      throw new ApiError(0, 'NetworkError', 'the KBS cannot be reached');
    }
    if (res.status === 401) {
      const e = await errorOf(res);
      this.onUnauthorized(`The KBS refused the admin token (${e.detail}).`);
      throw e;
    }
    if (!res.ok) throw await errorOf(res);
    return res;
  }

  async get<T>(path: string, signal?: AbortSignal): Promise<T> {
    return (await (await this.#fetch(path, signal ? { signal } : {})).json()) as T;
  }

  async post<T>(path: string, body: unknown): Promise<T> {
    return (await (await this.#fetch(path, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) })).json()) as T;
  }

  /**
   * Read a server-sent event stream with fetch (EventSource cannot send the Authorization header).
   * Resolves when the server ends the stream. Every received chunk (events and `: ping` comments)
   * resets the idle timer; a stream silent for `idleMs` is dropped (ApiError 0 `StreamIdle`), so a
   * dead connection is noticed and the caller can resume it from the last event id.
   */
  async stream(path: string, onEvent: (e: SseEvent) => void, signal: AbortSignal, opts: { readonly idleMs?: number; readonly onOpen?: () => void } = {}): Promise<void> {
    const ctl = new AbortController();
    const stop = () => ctl.abort();
    signal.addEventListener('abort', stop, { once: true });
    let idle = false;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const arm = () => {
      if (opts.idleMs === undefined) return;
      clearTimeout(timer);
      timer = setTimeout(() => {
        idle = true;
        ctl.abort();
      }, opts.idleMs);
    };
    try {
      arm();
      const res = await this.#fetch(path, { headers: { accept: 'text/event-stream' }, signal: ctl.signal });
      if (!/^text\/event-stream\b/.test(res.headers.get('content-type') ?? '')) {
        await res.body?.cancel();
        throw new ApiError(res.status, 'NotAStream', 'the KBS did not answer with an event stream');
      }
      opts.onOpen?.();
      const parser = new SseParser();
      const reader = res.body?.pipeThrough(new TextDecoderStream()).getReader();
      if (reader === undefined) return;
      for (;;) {
        arm();
        const { value, done } = await reader.read();
        if (done) return;
        for (const e of parser.push(value)) onEvent(e);
      }
    } catch (err) {
      if (idle && !signal.aborted) throw new ApiError(0, 'StreamIdle', `no data or heartbeat for ${Math.round((opts.idleMs ?? 0) / 1000)} s`);
      if (signal.aborted || err instanceof ApiError) throw err;
      throw new ApiError(0, 'NetworkError', 'the event stream was interrupted');
    } finally {
      clearTimeout(timer);
      signal.removeEventListener('abort', stop);
    }
  }
}
