/**
 * `keyhold-agent run --resource-socket PATH`: the daemon serves the secrets its attestation
 * releases to local workloads over a unix socket (wire.ts), so that fetching one does not start a
 * TPM session and a handshake per process (ocicrypt's cmd mode starts the agent once per layer
 * key). Access is the socket file's: created 0600 (owner: the daemon's user) in a directory other
 * users cannot write. Each request is bounded (head size, time, requests in flight); the secret is
 * zeroed once written; logs name the resource, never its value.
 */
import { lstat, unlink } from 'node:fs/promises';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { connect } from 'node:net';
import { dirname, resolve } from 'node:path';
import { AgentError } from '../errors.js';
import { KbsClientError } from '../kbs-client/errors.js';
import { AGENT_ERROR_TYPE_PREFIX, MAX_SECRET_BYTES, parseResourceTarget, RESOURCE_ROUTE, type SocketResource } from './wire.js';

export interface ResourceSocketLog {
  info(obj: Record<string, unknown>, msg: string): void;
  warn(obj: Record<string, unknown>, msg: string): void;
}

export interface ResourceSocketOptions {
  readonly path: string;
  /** Fetch and decrypt one resource (attesting first when needed). */
  readonly fetch: (resource: SocketResource) => Promise<Uint8Array>;
  readonly log: ResourceSocketLog;
  /** Requests served at once; more get 503 (default 16). */
  readonly maxInFlight?: number;
  /** Deadline of one answer, attestation included (default 120 s): then 504, and the fetch still counts as in flight until it ends. */
  readonly answerTimeoutMs?: number;
}

export interface ResourceSocket {
  readonly path: string;
  close(): Promise<void>;
}

/** Status and error code of a failed fetch, as the socket answers it. */
export function answerForError(err: unknown): { status: number; code: string; detail: string } {
  if (err instanceof KbsClientError) {
    const status =
      err.code === 'RESOURCE_NOT_FOUND' ? 404 : err.status === 401 || err.status === 403 ? err.status : err.code === 'KBS_UNAVAILABLE' ? 503 : 502;
    return { status, code: err.code, detail: err.message };
  }
  if (err instanceof AgentError) return { status: err.code === 'TPM_UNAVAILABLE' ? 503 : 500, code: err.code, detail: err.message };
  // SECURITY: an unexpected error's text (paths, internals) stays in the daemon's log, not in the answer.
  return { status: 500, code: 'INTERNAL', detail: 'the agent failed to fetch the resource (see its log)' };
}

function refuse(res: ServerResponse, status: number, code: string, detail: string, headers: Record<string, string> = {}): void {
  const body = JSON.stringify({ type: AGENT_ERROR_TYPE_PREFIX + code, detail });
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), 'cache-control': 'no-store', connection: 'close', ...headers });
  res.end(body);
}

async function probe(path: string): Promise<boolean> {
  return new Promise<boolean>((done) => {
    const s = connect(path, () => {
      s.destroy();
      done(true);
    });
    s.on('error', () => done(false));
  });
}

/** Make sure `path` can be bound: no file there, or a stale socket (removed). */
async function preparePath(path: string): Promise<void> {
  const dir = await lstat(dirname(path)).catch((cause: unknown) => {
    throw new AgentError('RESOURCE_SOCKET', `--resource-socket ${path}: its directory cannot be used`, { cause });
  });
  // SECURITY: in a directory other users can write (without the sticky bit), one of them could replace the socket with their own and serve forged secrets to this node's workloads.
  if (!dir.isDirectory() || ((dir.mode & 0o022) !== 0 && (dir.mode & 0o1000) === 0)) {
    throw new AgentError('RESOURCE_SOCKET', `--resource-socket ${path}: ${dirname(path)} is writable by other users (or not a directory); use a directory only the agent's user can write, e.g. /run/keyhold`);
  }
  const st = await lstat(path).catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') return undefined;
    throw new AgentError('RESOURCE_SOCKET', `--resource-socket ${path}: ${err.code ?? err.message}`, { cause: err });
  });
  if (st === undefined) return;
  // SECURITY: only a socket is ever removed at the path: a mistyped --resource-socket never deletes a file (or follows a symlink to one).
  if (!st.isSocket()) throw new AgentError('RESOURCE_SOCKET', `--resource-socket ${path}: a file that is not a socket is there; not replacing it`);
  if (await probe(path)) throw new AgentError('RESOURCE_SOCKET', `--resource-socket ${path}: another process is serving it`);
  await unlink(path);
}

/** Listen on `opts.path` (created 0600) until close(). */
export async function startResourceSocket(opts: ResourceSocketOptions): Promise<ResourceSocket> {
  const path = resolve(opts.path);
  const maxInFlight = opts.maxInFlight ?? 16;
  const answerTimeoutMs = opts.answerTimeoutMs ?? 120_000;
  const { log } = opts;
  await preparePath(path);
  let inFlight = 0;

  const serve = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const target = req.url ?? '';
    if (!target.startsWith(RESOURCE_ROUTE)) return refuse(res, 404, 'ROUTE_NOT_FOUND', `only GET ${RESOURCE_ROUTE}REPO/TYPE/TAG is served here`);
    if (req.method !== 'GET') return refuse(res, 405, 'METHOD_NOT_ALLOWED', 'only GET is served here', { allow: 'GET' });
    const resource = parseResourceTarget(target);
    if (resource === undefined) return refuse(res, 400, 'RESOURCE_PATH_INVALID', `not a resource: write ${RESOURCE_ROUTE}REPO/TYPE/TAG[?version=N] with segments of [A-Za-z0-9_.-]`);
    // SECURITY: requests in flight are bounded: a local flood is answered 503 at once instead of queueing TPM and KBS work without limit.
    if (inFlight >= maxInFlight) return refuse(res, 503, 'AGENT_BUSY', `${maxInFlight} requests are in flight; retry`, { 'retry-after': '1' });
    inFlight++;
    const name = `${resource.repository}/${resource.type}/${resource.tag}`;
    // The fetch counts as in flight until it ends, even when the answer went out at the deadline.
    const work = opts.fetch(resource).finally(() => inFlight--);
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<'timeout'>((done) => (timer = setTimeout(() => done('timeout'), answerTimeoutMs)));
    let secret: Uint8Array;
    try {
      const first = await Promise.race([work, deadline]);
      if (first === 'timeout') {
        // A secret that arrives after the answer is zeroed, never kept.
        work.then((late) => late.fill(0), () => undefined);
        log.warn({ resource: name, status: 504, code: 'AGENT_TIMEOUT' }, 'resource not served');
        return refuse(res, 504, 'AGENT_TIMEOUT', `no answer within ${answerTimeoutMs} ms (attestation or the KBS too slow)`);
      }
      secret = first;
    } catch (err) {
      const a = answerForError(err);
      log.warn({ resource: name, status: a.status, code: a.code, ...(a.code === 'INTERNAL' ? { reason: String((err as Error)?.message ?? err).slice(0, 500) } : {}) }, 'resource not served');
      return refuse(res, a.status, a.code, a.detail);
    } finally {
      clearTimeout(timer);
    }
    if (secret.length > MAX_SECRET_BYTES) {
      secret.fill(0);
      return refuse(res, 502, 'KBS_PROTOCOL', `the resource is larger than ${MAX_SECRET_BYTES} bytes`);
    }
    const bytes = secret;
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': bytes.length, 'cache-control': 'no-store', connection: 'close' });
    // Zeroed once the socket has taken it (until then the write queue holds this very buffer).
    res.end(bytes, () => bytes.fill(0));
    res.on('close', () => bytes.fill(0));
    log.info({ resource: name, bytes: bytes.length }, 'resource served');
  };

  const server = createServer({ maxHeaderSize: 8192 }, (req, res) => {
    serve(req, res).catch((err: unknown) => {
      log.warn({ reason: String((err as Error)?.message ?? err).slice(0, 500) }, 'resource request failed');
      if (!res.headersSent) refuse(res, 500, 'INTERNAL', 'the agent failed to answer');
      else res.destroy();
    });
  });
  // SECURITY: slow or silent clients are cut off (the request's headers within 5 s, all of it within 10 s), so they cannot hold connections open.
  server.headersTimeout = 5000;
  server.requestTimeout = 10_000;
  server.maxConnections = maxInFlight * 4;

  const listening = new Promise<void>((done, fail) => {
    server.once('error', fail);
    server.once('listening', () => {
      server.off('error', fail);
      done();
    });
  });
  // The socket is created 0600: no moment when another user could connect to it. A unix socket is
  // bound synchronously inside listen(), so the umask is back before anything else runs.
  const umask = process.umask(0o177);
  try {
    server.listen(path);
  } finally {
    process.umask(umask);
  }
  try {
    await listening;
  } catch (cause) {
    throw new AgentError('RESOURCE_SOCKET', `--resource-socket ${path}: cannot listen: ${(cause as NodeJS.ErrnoException).code ?? cause}`, { cause });
  }
  const { ino } = await lstat(path);
  return {
    path,
    close: () =>
      new Promise<void>((done) => {
        server.close(() => done());
        server.closeAllConnections();
      }).then(async () => {
        // Node removes the socket file when the server closes; a file that replaced it is left alone.
        const now = await lstat(path).catch(() => undefined);
        if (now?.isSocket() === true && now.ino === ino) await unlink(path).catch(() => undefined);
      }),
  };
}
