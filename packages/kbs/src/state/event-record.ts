/**
 * Validation and ordering of events (state port `EventState`): on publish (programmer error →
 * TypeError) and on read from a backend (damage or tampering → STATE_CORRUPT). Event ids are
 * `<ms>-<seq>`, as Redis stream ids, compared as a pair of integers.
 */
import { z } from 'zod';
import { StateError } from './errors.js';
import { KBS_EVENT_TYPES, type KbsEvent, type KbsEventInput } from './ports.js';

/** Retained events per state unless configured otherwise. */
export const DEFAULT_EVENT_RETENTION = 10_000;
export const MAX_EVENT_RETENTION = 1_000_000;
/** Bound on one stored event (JSON). */
export const MAX_EVENT_CHARS = 4096;
/** Most events one `read` / `latest` returns. */
export const MAX_EVENT_PAGE = 1000;

const EVENT_ID = /^(0|[1-9][0-9]{0,15})-(0|[1-9][0-9]{0,15})$/;
/** Consumer and lease names: short, plain (they become Redis hash fields and key suffixes). */
const NAME = /^[a-z0-9][a-z0-9._-]{0,63}$/;

const text = (max: number) => z.string().min(1).max(max);
const eventSchema = z.strictObject({
  type: z.enum(KBS_EVENT_TYPES),
  at: z.string().min(1).max(64),
  replica: text(128).optional(),
  node: text(300).optional(),
  spiffeId: text(512).optional(),
  tee: text(64).optional(),
  repository: text(255).optional(),
  resource: text(800).optional(),
  policy: text(512).optional(),
  status: text(64).optional(),
  reason: text(1024).optional(),
});

export function isEventId(id: unknown): id is string {
  return typeof id === 'string' && EVENT_ID.test(id);
}

/** Throws TypeError unless `id` is an event id. */
export function checkEventId(id: string): void {
  // SECURITY: ids reach XRANGE bounds and journal keys; only `<ms>-<seq>` passes (key injection).
  if (!isEventId(id)) throw new TypeError('event id must be <ms>-<seq>');
}

export function checkName(name: string, what: string): void {
  // SECURITY: names become Redis key suffixes and hash fields; only short plain names pass (key injection).
  if (typeof name !== 'string' || !NAME.test(name)) throw new TypeError(`${what} must match ${NAME.source}`);
}

export function checkPageLimit(limit: number): void {
  if (!Number.isSafeInteger(limit) || limit < 1 || limit > MAX_EVENT_PAGE) throw new TypeError(`event page limit must be an integer in 1..${MAX_EVENT_PAGE}`);
}

/** The two integers of an id. */
export function eventIdParts(id: string): readonly [number, number] {
  const dash = id.indexOf('-');
  return [Number(id.slice(0, dash)), Number(id.slice(dash + 1))];
}

/** Negative, zero or positive as `a` is before, equal to or after `b`. */
export function compareEventIds(a: string, b: string): number {
  const [am, as] = eventIdParts(a);
  const [bm, bs] = eventIdParts(b);
  return am !== bm ? am - bm : as - bs;
}

/** Validate an event to publish; returns its JSON (without id). */
export function checkEventInput(event: KbsEventInput): string {
  const r = eventSchema.safeParse(event);
  if (!r.success) throw new TypeError(`event is malformed: ${r.error.issues[0]?.path.join('.') ?? ''} ${r.error.issues[0]?.message ?? ''}`.trim());
  const json = JSON.stringify(r.data);
  if (json.length > MAX_EVENT_CHARS) throw new TypeError(`event exceeds ${MAX_EVENT_CHARS} characters of JSON`);
  return json;
}

/** Decode a stored event (JSON without id) at `id`; STATE_CORRUPT when it does not fit. */
export function decodeStoredEvent(id: string, json: unknown): KbsEvent {
  const corrupt = (why: string, cause?: unknown): StateError => new StateError('STATE_CORRUPT', `event ${String(id).slice(0, 40)} is corrupt: ${why}`, { cause });
  // SECURITY: backend data is bounded and schema-checked before use (tampered or damaged store).
  if (!isEventId(id)) throw corrupt('bad id');
  let parsed: unknown = json;
  if (typeof json === 'string') {
    if (json.length > MAX_EVENT_CHARS) throw corrupt('too large');
    try {
      parsed = JSON.parse(json);
    } catch (cause) {
      throw corrupt('not JSON', cause);
    }
  }
  const r = eventSchema.safeParse(parsed);
  if (!r.success) throw corrupt('schema');
  return Object.freeze({ id, ...(r.data as KbsEventInput) });
}

export function checkRetention(n: number): number {
  if (!Number.isSafeInteger(n) || n < 1 || n > MAX_EVENT_RETENTION) throw new TypeError(`event retention must be an integer in 1..${MAX_EVENT_RETENTION}`);
  return n;
}
