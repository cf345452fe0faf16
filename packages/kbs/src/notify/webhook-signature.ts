/**
 * Webhook signatures (issue 13). Every delivery carries
 *
 *   keyhold-signature: t=<unix seconds>,v1=<lowercase hex HMAC-SHA256(secret, "<t>.<raw body>")>
 *   keyhold-event-id:  <event id>          (dedupe: delivery is at least once)
 *   keyhold-event-type: <event type>
 *
 * A receiver recomputes the HMAC over the exact bytes it received, compares in constant time, and
 * refuses a `t` more than 5 minutes from its clock (a captured delivery cannot be replayed later;
 * within the window, dedupe by event id). Each retry is signed afresh with a new `t`.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';

export const SIGNATURE_HEADER = 'keyhold-signature';
export const EVENT_ID_HEADER = 'keyhold-event-id';
export const EVENT_TYPE_HEADER = 'keyhold-event-type';
/** Default replay window of `verifyWebhookSignature`. */
export const SIGNATURE_TOLERANCE_SEC = 300;

/** The `keyhold-signature` value for `body` at `t` (unix seconds). */
export function signWebhook(secret: Uint8Array, body: string, t: number): string {
  if (!Number.isSafeInteger(t) || t < 0) throw new TypeError('t must be unix seconds');
  return `t=${t},v1=${createHmac('sha256', secret).update(`${t}.${body}`).digest('hex')}`;
}

/**
 * Check a delivery: the header parses, `t` is within `toleranceSec` of `nowSec`, and a `v1`
 * signature matches (constant-time). What a receiver runs; the KBS uses it in its tests.
 */
export function verifyWebhookSignature(secret: Uint8Array, body: string, header: string | null | undefined, nowSec: number, toleranceSec = SIGNATURE_TOLERANCE_SEC): boolean {
  if (typeof header !== 'string' || header.length > 1024) return false;
  let t: number | undefined;
  const sigs: string[] = [];
  for (const part of header.split(',')) {
    const eq = part.indexOf('=');
    const k = part.slice(0, eq).trim();
    const v = part.slice(eq + 1).trim();
    if (k === 't' && /^[0-9]{1,12}$/.test(v)) t = Number(v);
    else if (k === 'v1' && /^[0-9a-f]{64}$/.test(v)) sigs.push(v);
  }
  // SECURITY: a stale or future timestamp is refused, so a recorded delivery cannot be replayed later.
  if (t === undefined || Math.abs(nowSec - t) > toleranceSec) return false;
  const want = createHmac('sha256', secret).update(`${t}.${body}`).digest();
  // SECURITY: constant-time comparison (no byte-by-byte timing oracle on the MAC).
  return sigs.some((s) => timingSafeEqual(Buffer.from(s, 'hex'), want));
}
