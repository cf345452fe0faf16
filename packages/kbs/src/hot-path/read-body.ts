import { IncomingMessage, type ServerResponse } from 'node:http';
import type { Context } from 'hono';
import { HTTPException } from 'hono/http-exception';
import { KbsError } from '../errors.js';

/** `application/json` or any `application/<x>+json`, parameters allowed. */
const JSON_MEDIA_TYPE = /^application\/(.+\+)?json\b/i;

const utf8 = new TextDecoder('utf-8');

/**
 * Read a JSON request body: content type checked (415), size capped at `maxBytes` (413), JSON parsed
 * (400). On @hono/node-server it reads node's own request stream (`c.env.incoming`), which spares
 * building a web `Request` and its streams for every POST; without one (in-process `app.request()`
 * tests, other runtimes) or when something already attached to the node stream, it reads the web
 * request's body with the same cap. Returns the parsed JSON, unvalidated: callers validate it.
 */
export async function readJsonRequest(c: Context, maxBytes: number): Promise<unknown> {
  const incoming = nodeIncoming(c);
  if (incoming !== undefined) return readJsonIncoming(incoming, nodeOutgoing(c), maxBytes);
  checkDeclaredJson(c.req.header('content-type'), c.req.header('content-length'), maxBytes);
  return parseJson(await readWebBody(c.req.raw.body, maxBytes));
}

/**
 * Read a JSON body from node's own request stream, with the checks of `readJsonRequest`. When it
 * is refused for its size, `outgoing` (if given) is marked `connection: close`, so the rest of an
 * unbounded body is not drained.
 */
export async function readJsonIncoming(incoming: IncomingMessage, outgoing: ServerResponse | undefined, maxBytes: number): Promise<unknown> {
  const h = incoming.headers;
  checkDeclaredJson(h['content-type'], h['content-length'], maxBytes);
  return parseJson(await readIncoming(incoming, maxBytes, outgoing));
}

function checkDeclaredJson(contentType: string | undefined, declared: string | undefined, maxBytes: number): void {
  // SECURITY: bodies must be declared JSON; a form or text post is refused before it is read
  // (content-type confusion; Hono's validators would see `{}`) (RFC 8259 §11).
  if (contentType === undefined || !JSON_MEDIA_TYPE.test(contentType.trim())) {
    throw new KbsError('UNSUPPORTED_MEDIA_TYPE', 'request body must be application/json');
  }
  // SECURITY: a body declared larger than the cap is refused before one byte is read (memory exhaustion).
  if (declared !== undefined && Number(declared) > maxBytes) throw tooLarge(maxBytes);
}

function parseJson(bytes: Uint8Array): unknown {
  try {
    return JSON.parse(utf8.decode(bytes));
  } catch (cause) {
    throw new KbsError('BAD_REQUEST', 'request body is not valid JSON', { cause });
  }
}

/** The untouched node request behind this context, if there is one. */
function nodeIncoming(c: Context): IncomingMessage | undefined {
  const incoming = (c.env as { incoming?: unknown } | undefined)?.incoming;
  if (!(incoming instanceof IncomingMessage)) return undefined;
  // Once a consumer is attached (a web Request built over the stream, e.g. by hono's bodyLimit for a
  // chunked body), the bytes belong to it: read through the web request instead.
  if (incoming.readableFlowing !== null || incoming.readableDidRead || incoming.readableEnded) return undefined;
  return incoming;
}

function nodeOutgoing(c: Context): ServerResponse | undefined {
  const outgoing = (c.env as { outgoing?: { setHeader?: unknown } } | undefined)?.outgoing;
  return typeof outgoing?.setHeader === 'function' ? (outgoing as ServerResponse) : undefined;
}

function readIncoming(incoming: IncomingMessage, maxBytes: number, outgoing: ServerResponse | undefined): Promise<Buffer> {
  return new Promise<Buffer>((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const cleanup = (): void => {
      incoming.off('data', onData);
      incoming.off('end', onEnd);
      incoming.off('error', onError);
      incoming.off('close', onClose);
    };
    const onData = (chunk: Buffer): void => {
      size += chunk.length;
      // SECURITY: the cap holds for chunked bodies too, counted as bytes arrive; the excess is never
      // buffered (memory exhaustion).
      if (size > maxBytes) {
        cleanup();
        chunks.length = 0;
        // The 413 goes out, then the connection closes instead of draining an unbounded body.
        outgoing?.setHeader('connection', 'close');
        incoming.resume();
        reject(tooLarge(maxBytes));
        return;
      }
      chunks.push(chunk);
    };
    const onEnd = (): void => {
      cleanup();
      resolve(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, size));
    };
    const onError = (err: Error): void => {
      cleanup();
      reject(new KbsError('BAD_REQUEST', 'request body could not be read', { cause: err }));
    };
    // A client that goes away mid-body ends the read; nothing waits for bytes that will not come.
    const onClose = (): void => {
      cleanup();
      reject(new KbsError('BAD_REQUEST', 'request body ended early'));
    };
    incoming.on('data', onData);
    incoming.once('end', onEnd);
    incoming.once('error', onError);
    incoming.once('close', onClose);
  });
}

async function readWebBody(body: ReadableStream<Uint8Array> | null, maxBytes: number): Promise<Uint8Array> {
  if (body === null) return new Uint8Array(0);
  const reader = body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    let step: Awaited<ReturnType<typeof reader.read>>;
    try {
      step = await reader.read();
    } catch (err) {
      // A limit enforced further up the chain (hono's bodyLimit) keeps its own error.
      if (err instanceof KbsError || err instanceof HTTPException) throw err;
      throw new KbsError('BAD_REQUEST', 'request body could not be read', { cause: err });
    }
    if (step.done) break;
    size += step.value.byteLength;
    // SECURITY: same cap without a node request (memory exhaustion).
    if (size > maxBytes) {
      await reader.cancel().catch(() => undefined);
      throw tooLarge(maxBytes);
    }
    chunks.push(step.value);
  }
  return Buffer.concat(chunks, size);
}

function tooLarge(maxBytes: number): KbsError {
  return new KbsError('PAYLOAD_TOO_LARGE', `request body exceeds ${maxBytes} bytes`);
}
