import { createHmac, timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';

/** One delivery as the receiver got it: the raw body bytes and the headers. */
export interface Delivery {
  readonly headers: IncomingHttpHeaders;
  readonly body: Buffer;
  readonly at: number;
}

export interface WebhookReceiver {
  readonly url: string;
  readonly deliveries: Delivery[];
  close(): Promise<void>;
}

/**
 * A local webhook endpoint standing in for an owner's receiver: records every POST (raw body and
 * headers) and answers 204. Bodies are bounded (64 KiB) as a real receiver would bound them.
 */
export async function startWebhookReceiver(): Promise<WebhookReceiver> {
  const deliveries: Delivery[] = [];
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > 64 * 1024) req.destroy();
      else chunks.push(c);
    });
    req.on('end', () => {
      deliveries.push({ headers: req.headers, body: Buffer.concat(chunks), at: Date.now() });
      res.writeHead(204).end();
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const addr = server.address();
  const port = typeof addr === 'object' && addr !== null ? addr.port : 0;
  return {
    url: `http://127.0.0.1:${port}/hooks/keyhold`,
    deliveries,
    close: () =>
      new Promise<void>((r) => {
        server.close(() => r());
        server.closeAllConnections();
      }),
  };
}

/**
 * Check a delivery the way the KBS documents it (README "Continuous attestation", webhooks):
 * `keyhold-signature: t=<unix s>,v1=<hex HMAC-SHA256(secret, "<t>.<raw body>")>`, compared in
 * constant time, refused when |now - t| > 300 s. Returns the event, or throws saying what failed.
 */
export function verifyDelivery(d: Delivery, secret: Buffer, nowMs = Date.now()): Record<string, unknown> {
  const header = String(d.headers['keyhold-signature'] ?? '');
  const m = /^t=(\d{1,12}),v1=([0-9a-f]{64})$/.exec(header);
  if (m === null) throw new Error(`malformed keyhold-signature header ${JSON.stringify(header)}`);
  const t = Number(m[1]);
  if (Math.abs(nowMs / 1000 - t) > 300) throw new Error('signature timestamp outside 300 s');
  const expected = createHmac('sha256', secret).update(`${t}.`).update(d.body).digest();
  if (!timingSafeEqual(expected, Buffer.from(m[2] as string, 'hex'))) throw new Error('signature does not verify');
  const event = JSON.parse(d.body.toString('utf8')) as Record<string, unknown>;
  if (d.headers['keyhold-event-id'] !== event['id'] || d.headers['keyhold-event-type'] !== event['type']) throw new Error('event id/type headers do not match the body');
  return event;
}
