import type { Context } from 'hono';
import type { z } from 'zod';
import { KbsError } from '../errors.js';

/**
 * Read a JSON request body and validate it against a schema. The body must be declared JSON
 * (Hono hands validators `{}` otherwise) and must parse; failures are typed 415/400 errors whose
 * detail names the offending field but never echoes values.
 */
export async function readJsonBody<S extends z.ZodType>(c: Context, schema: S): Promise<z.output<S>> {
  const ct = c.req.header('content-type') ?? '';
  if (!/^application\/(.+\+)?json\b/i.test(ct.trim())) {
    throw new KbsError('UNSUPPORTED_MEDIA_TYPE', 'request body must be application/json');
  }
  let json: unknown;
  try {
    json = JSON.parse(await c.req.text());
  } catch (cause) {
    if (cause instanceof KbsError) throw cause;
    throw new KbsError('BAD_REQUEST', 'request body is not valid JSON', { cause });
  }
  const parsed = schema.safeParse(json);
  if (!parsed.success) {
    const first = parsed.error.issues[0];
    const where = first === undefined || first.path.length === 0 ? 'body' : first.path.join('.');
    throw new KbsError('BAD_REQUEST', `invalid request: ${where}: ${first?.message ?? 'malformed'}`);
  }
  return parsed.data;
}
