import type { Logger } from 'pino';
import { HTTPException } from 'hono/http-exception';
import { errorInformation, type ErrorInformation } from '@keyhold/protocol';
import type { KbsDeps } from './app-env.js';
import { ERROR_TABLE, KbsError } from './errors.js';
import { describeStorageFailure } from './storage/storage-failure.js';

/** What a failed request is answered with: status, Trustee's `{"type","detail"}` body, and for 429 a `retry-after`. */
export interface ErrorAnswer {
  readonly status: (typeof ERROR_TABLE)[keyof typeof ERROR_TABLE]['status'];
  readonly body: ErrorInformation;
  readonly retryAfterSec?: number;
}

/**
 * The single mapping from a thrown error to the answer, for Hono's `onError` and for the flow routes
 * node serves directly, and the log line each gets: anything that is not a KbsError becomes a 500
 * (or a 503 for a storage outage) whose detail says nothing of the cause.
 */
export function errorAnswer(err: unknown, log: Logger | undefined, deps: KbsDeps | undefined): ErrorAnswer {
  let kbsErr: KbsError;
  if (err instanceof KbsError) kbsErr = err;
  else if (err instanceof HTTPException && err.status === 413) kbsErr = new KbsError('PAYLOAD_TOO_LARGE', 'request body too large');
  else if (err instanceof HTTPException && err.status < 500) kbsErr = new KbsError('BAD_REQUEST', err.message || 'bad request');
  else if (isStorageUnavailable(err)) kbsErr = new KbsError('STORAGE_UNAVAILABLE', 'storage is unavailable, retry later', { cause: err });
  else kbsErr = new KbsError('INTERNAL', 'internal error', { cause: err });
  const { status, variant } = ERROR_TABLE[kbsErr.code];
  // Which backend, where, and the chain of causes (codes, errno fields): what an operator needs to fix an outage.
  if (kbsErr.code === 'STORAGE_UNAVAILABLE') log?.error({ code: kbsErr.code, status, storage: describeStorageFailure(err, deps?.storageEndpoints) }, 'storage unavailable');
  else if (status >= 500) log?.error({ code: kbsErr.code, err: describeCause(err) }, 'request failed');
  else log?.info({ code: kbsErr.code, status }, 'request refused');
  const body = errorInformation(variant, kbsErr.message);
  return status === 429 ? { status, body, retryAfterSec: kbsErr.retryAfterSec ?? 1 } : { status, body };
}

/**
 * Storage adapters and the state backend signal an outage with a `code` ending in `_UNAVAILABLE`;
 * the policy store and the audit sink with their `*_FAILED` codes (file or Redis unreadable or
 * unwritable); a compare-and-swap that kept losing with STATE_CONFLICT. All answer 503 (retry later).
 */
function isStorageUnavailable(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' && (/(^|_)UNAVAILABLE$/.test(code) || code === 'POLICY_STORE_FAILED' || code === 'AUDIT_SINK_FAILED' || code === 'STATE_CONFLICT');
}

function describeCause(err: unknown): string {
  if (err instanceof Error) return `${err.name}: ${(err as { code?: string }).code ?? ''}`;
  return typeof err;
}
