import { z } from 'zod';
import { KbsError } from '../errors.js';

/** Trustee RVPS message: `{"version":"0.1.0","type":"sample","payload":"<base64 JSON {name:[values]}>"}`. */
export const RvpsMessageSchema = z.object({
  version: z.literal('0.1.0'),
  type: z.literal('sample'),
  payload: z.string().max(4 * 1024 * 1024),
});

/** Names are plain identifiers (they appear in logs, audit records and backend keys). */
export const REFERENCE_NAME = /^[A-Za-z0-9_.:-]{1,256}$/;

const PayloadSchema = z.record(z.string().regex(REFERENCE_NAME), z.array(z.string().max(64 * 1024)).max(100_000));

/** Decode the sample RVPS payload (standard base64 of a JSON object, or the JSON itself). */
export function decodeRvpsPayload(payload: string): Record<string, string[]> {
  const text = payload.trimStart().startsWith('{') ? payload : Buffer.from(payload, 'base64').toString('utf8');
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (cause) {
    throw new KbsError('BAD_REQUEST', 'reference-value payload is not base64 of a JSON object', { cause });
  }
  const parsed = PayloadSchema.safeParse(json);
  // SECURITY: names are bounded identifiers and values bounded strings before anything is stored
  // (log/key injection, resource exhaustion).
  if (!parsed.success) throw new KbsError('BAD_REQUEST', 'reference-value payload must map names (^[A-Za-z0-9_.:-]{1,256}$) to lists of strings');
  return parsed.data;
}
