import type { Context } from 'hono';
import type { z } from 'zod';
import type { KbsEnv } from '../app-env.js';
import { ProtocolError } from '@keyhold/protocol';
import { KbsError } from '../errors.js';
import { readJsonRequest } from '../hot-path/read-body.js';

/**
 * Read a JSON request body and validate it against a schema. The body must be declared JSON
 * (Hono hands validators `{}` otherwise), fit `maxBodyBytes` (or the route's smaller `maxBytes`) and parse; failures are typed
 * 415/413/400 errors whose detail names the offending field but never echoes values. The bytes come
 * straight from node's request stream when the KBS runs on @hono/node-server (see hot-path/read-body).
 */
export async function readJsonBody<S extends z.ZodType>(c: Context<KbsEnv>, schema: S, maxBytes?: number): Promise<z.output<S>> {
  return validateBody(await readJsonRequest(c, Math.min(maxBytes ?? Infinity, c.get('deps').maxBodyBytes)), schema);
}

/** Validate a parsed JSON body: a 400 naming the first offending field (never its value) when it does not fit. */
export function validateBody<S extends z.ZodType>(json: unknown, schema: S): z.output<S> {
  const parsed = schema.safeParse(json);
  if (!parsed.success) {
    const first = parsed.error.issues[0];
    const where = first === undefined || first.path.length === 0 ? 'body' : first.path.join('.');
    throw new KbsError('BAD_REQUEST', `invalid request: ${where}: ${first?.message ?? 'malformed'}`);
  }
  return parsed.data;
}

/**
 * Check a parsed JSON body with one of the protocol's hand-written message checks (the hot path's
 * equivalent of a schema: `checkKbsRequest`, `checkAttestation`): the same 400 as `validateBody`.
 */
export function checkBody<T>(json: unknown, check: (body: unknown) => T): T {
  try {
    return check(json);
  } catch (err) {
    if (err instanceof ProtocolError) throw new KbsError('BAD_REQUEST', `invalid request: ${err.message}`);
    throw err;
  }
}
