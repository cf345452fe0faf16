/**
 * A client of the resource socket (wire.ts) for `keyhold-agent get-resource --resource-socket`.
 * node:net and a small HTTP/1.1 response reader, not node:http: loading node's HTTP client costs
 * ~20 ms of every CLI start on the bench machine, a seventh of what get-resource through the socket
 * takes in all (measured: `node` with node:http 131 ms, with node:net 120 ms, `node -e 0` 110 ms).
 * The reader accepts only what the agent's server sends: one answer with a Content-Length, no
 * chunking, bounded head and body, read to the end.
 */
import { connect } from 'node:net';
import { CliError, type ExitCode } from '@keyhold/command-line/reporting';
import { AGENT_ERROR_TYPE_PREFIX, exitCodeForAnswer, MAX_ERROR_BODY_BYTES, MAX_HEAD_BYTES, MAX_SECRET_BYTES, resourceTarget, type SocketResource } from './wire.js';

/** A failure fetching through the socket, as the CLI reports it (code, message, exit code). */
export class ResourceSocketError extends CliError {
  override readonly name: string = 'ResourceSocketError';
  /** The HTTP status of the agent's answer, when there was one. */
  readonly status: number | undefined;
  /** The message without the code. */
  readonly detail: string;
  constructor(code: string, detail: string, options: { status?: number; exitCode?: ExitCode; hint?: string; cause?: unknown } = {}) {
    super(code, `${code}: ${detail}`, options);
    this.status = options.status;
    this.detail = detail;
  }
}

export interface FetchOptions {
  /** Whole-exchange deadline (default 120 s: the daemon may have to attest first). */
  readonly timeoutMs?: number;
}

const HEAD_END = Buffer.from('\r\n\r\n');

/** Control characters (terminal escapes included) are shown as `?` in what a peer sends back. */
function printable(text: string, max: number): string {
  // SECURITY: a detail read from the socket cannot write terminal escape sequences to the user's stderr.
  return text.slice(0, max).replace(/[\u0000-\u001f\u007f-\u009f]/g, '?');
}

function errorFromAnswer(status: number, body: Buffer): ResourceSocketError {
  let code = 'AGENT_REFUSED';
  let detail = `HTTP ${status}`;
  try {
    const info = JSON.parse(body.toString('utf8')) as { type?: unknown; detail?: unknown };
    if (typeof info.type === 'string' && info.type.startsWith(AGENT_ERROR_TYPE_PREFIX)) {
      const c = info.type.slice(AGENT_ERROR_TYPE_PREFIX.length);
      if (/^[A-Z][A-Z0-9_]{0,63}$/.test(c)) code = c;
    }
    if (typeof info.detail === 'string') detail = printable(info.detail, 1000);
  } catch {
    /* not an error body: the status says it */
  }
  return new ResourceSocketError(code, detail, { status, exitCode: exitCodeForAnswer(status, code) });
}

/**
 * Fetch one resource through the daemon's socket: the secret's bytes, or a {@link ResourceSocketError}
 * (the daemon's refusal with its code and exit code, `AGENT_UNREACHABLE` when nothing serves the
 * socket, `AGENT_PROTOCOL` for an answer that is not one the agent sends).
 */
export function fetchFromResourceSocket(socketPath: string, resource: SocketResource, opts: FetchOptions = {}): Promise<Buffer> {
  return new Promise<Buffer>((resolve, reject) => {
    const chunks: Buffer[] = [];
    let received = 0;
    let head: { status: number; length: number; bodyAt: number } | undefined;
    let settled = false;
    const wipe = (): void => {
      for (const c of chunks) c.fill(0);
      chunks.length = 0;
    };
    const finish = (err: ResourceSocketError | undefined, value?: Buffer): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      wipe();
      if (err !== undefined) reject(err);
      else resolve(value as Buffer);
    };
    const protocolError = (what: string): void => finish(new ResourceSocketError('AGENT_PROTOCOL', `${socketPath}: ${what}`));
    const timeoutMs = opts.timeoutMs ?? 120_000;
    const timer = setTimeout(() => finish(new ResourceSocketError('AGENT_UNREACHABLE', `no answer on ${socketPath} within ${timeoutMs} ms`)), timeoutMs);

    const socket = connect(socketPath, () => {
      // Connection: close: the server ends the connection after its answer, which ends the body read.
      socket.write(`GET ${resourceTarget(resource)} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n`);
    });
    socket.on('error', (err: NodeJS.ErrnoException) => {
      const why = err.code === 'ENOENT' || err.code === 'ECONNREFUSED' ? 'no keyhold-agent run is serving it' : err.code === 'EACCES' ? 'permission denied' : err.message;
      finish(
        new ResourceSocketError('AGENT_UNREACHABLE', `${socketPath}: ${why}${err.code !== undefined ? ` (${err.code})` : ''}`, {
          cause: err,
          hint: "start the daemon with 'keyhold-agent run --resource-socket PATH', or fetch directly without --resource-socket",
        }),
      );
    });
    socket.on('data', (chunk: Buffer) => {
      if (settled) return;
      chunks.push(chunk);
      received += chunk.length;
      if (head === undefined) {
        const all = Buffer.concat(chunks);
        const end = all.indexOf(HEAD_END);
        // SECURITY: the head is bounded, so a peer that never ends its headers cannot grow this process's memory.
        if (end < 0) return void (received > MAX_HEAD_BYTES && protocolError('answer head too large'));
        wipe();
        chunks.push(all);
        const parsed = parseHead(all.subarray(0, end).toString('latin1'));
        if (typeof parsed === 'string') return protocolError(parsed);
        const cap = parsed.status === 200 ? MAX_SECRET_BYTES : MAX_ERROR_BODY_BYTES;
        // SECURITY: the body is bounded before it is read: an announced length over the cap is refused, not buffered.
        if (parsed.length > cap) return protocolError(`answer body of ${parsed.length} bytes exceeds ${cap}`);
        head = { ...parsed, bodyAt: end + HEAD_END.length };
      }
      if (received - head.bodyAt > head.length) protocolError('answer longer than its Content-Length');
    });
    socket.on('end', () => {
      if (settled) return;
      if (head === undefined) return protocolError('connection closed before an answer');
      const all = Buffer.concat(chunks);
      const body = all.subarray(head.bodyAt);
      // SECURITY: a cut-off answer is an error, never a shorter secret.
      if (body.length !== head.length) return protocolError(`answer cut off: ${body.length} of ${head.length} bytes`);
      if (head.status === 200) {
        const secret = Buffer.from(body);
        all.fill(0);
        finish(undefined, secret);
      } else {
        finish(errorFromAnswer(head.status, body));
      }
    });
  });
}

/** Status and Content-Length of an answer head, or what is wrong with it. */
function parseHead(text: string): { status: number; length: number } | string {
  const lines = text.split('\r\n');
  const m = /^HTTP\/1\.[01] ([1-5][0-9]{2})(?: |$)/.exec(lines[0] ?? '');
  if (m === null) return 'not an HTTP/1.1 answer';
  let length: number | undefined;
  for (const line of lines.slice(1)) {
    const colon = line.indexOf(':');
    if (colon <= 0) return 'malformed header line';
    const name = line.slice(0, colon).trim().toLowerCase();
    const value = line.slice(colon + 1).trim();
    // SECURITY: only a single plain Content-Length frames the body; chunking or a second, different length (response smuggling) is refused.
    if (name === 'transfer-encoding') return 'chunked answers are not accepted';
    if (name === 'content-length') {
      if (!/^[0-9]{1,10}$/.test(value) || (length !== undefined && length !== Number(value))) return 'bad Content-Length';
      length = Number(value);
    }
  }
  if (length === undefined) return 'answer has no Content-Length';
  return { status: Number(m[1]), length };
}
