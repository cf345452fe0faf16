import { generateCookie } from 'hono/cookie';
import { PROTOCOL_VERSION, checkKbsRequest, selectedBindingHash, BINDING_HASH_ALGORITHMS } from '@keyhold/protocol';
import { KbsError } from '../errors.js';
import { SESSION_COOKIE } from '../session/cookie.js';
import { newSession } from '../session/new-session.js';
import type { ReferenceSnapshot } from '../state/ports.js';
import { checkBody } from './json-body.js';
import { auditEvent } from '../owners/record-event.js';
import type { FlowAnswer, FlowExchange } from '../hot-path/flow-exchange.js';

/**
 * POST /kbs/v0/auth — start a handshake: check version and TEE, run the appraiser's challenge, then
 * store the complete session (nonce, hash algorithm, the challenge's bounded state) in the state
 * backend, so `/attest` may land on any replica. The raw extra-params are never stored.
 */
export async function handleAuth(x: FlowExchange): Promise<FlowAnswer> {
  const deps = x.deps;
  const req = await readRequest(x);
  // SECURITY: only protocol 0.4.0 is spoken; an older client's message layout would be misread
  // (protocol confusion) (Trustee KBS protocol).
  if (req.version !== PROTOCOL_VERSION) {
    throw new KbsError('PROTOCOL_VERSION', `protocol version ${JSON.stringify(req.version).slice(0, 32)} is not supported; use ${PROTOCOL_VERSION}`);
  }
  const appraiser = deps.appraisers.get(req.tee);
  // SECURITY: only TEE types with a real appraiser are accepted; there is no 'sample' back door.
  if (appraiser === undefined) throw new KbsError('UNSUPPORTED_TEE', `tee ${JSON.stringify(req.tee).slice(0, 32)} is not supported`);

  const extra = typeof req['extra-params'] === 'object' && req['extra-params'] !== null ? req['extra-params'] : {};
  const hashAlgorithm = chooseHash(extra['supported-hash-algorithms']);
  const nowMs = deps.now?.() ?? Date.now();
  const challengeExtra: Record<string, unknown> = {};
  if (hashAlgorithm !== 'sha384') challengeExtra['selected-hash-algorithm'] = hashAlgorithm;
  let challengeState: Record<string, unknown> | undefined;
  if (appraiser.challenge !== undefined) {
    let references: Promise<ReferenceSnapshot> | undefined;
    const challenge = await appraiser.challenge({
      tee: req.tee,
      extraParams: extra,
      // At most one snapshot per request, and none when the challenge needs no reference value.
      references: () => (references ??= deps.state.referenceValues.snapshot()),
      now: new Date(nowMs),
    });
    Object.assign(challengeExtra, challenge.extraParams ?? {});
    challengeState = challenge.state;
  }
  const session = newSession({ tee: req.tee, hashAlgorithm, ttlMs: deps.sessionTtlMs, nowMs, ...(challengeState !== undefined ? { challenge: challengeState } : {}) });
  // Throws SESSION_LIMIT (429) when the open sessions' count or bytes reach their cap.
  await deps.state.sessions.create(session);
  const setCookie = generateCookie(SESSION_COOKIE, session.id, {
    path: '/kbs',
    httpOnly: true,
    sameSite: 'Strict',
    maxAge: Math.ceil(deps.sessionTtlMs / 1000),
    expires: new Date(session.expiresAtMs),
    // Over HTTPS the cookie never travels in clear later (RFC 6265 §4.1.2.5).
    secure: x.secure,
  });
  deps.metrics?.count('auth', req.tee);
  await auditEvent(x, 'auth', { tee: req.tee, verdict: 'challenged' });
  return { body: { nonce: session.nonce, 'extra-params': Object.keys(challengeExtra).length === 0 ? '' : challengeExtra }, setCookie };
}

/** Default cap on a `/auth` body: its extra-params name an identity of a few KiB (an EK certificate is at most 16 KiB). */
export const DEFAULT_MAX_AUTH_BODY_BYTES = 64 * 1024;

async function readRequest(x: FlowExchange) {
  // SECURITY: an unauthenticated client's /auth body is small and bounded on its own (413 beyond),
  // so a stream of large extra-params cannot grow the KBS (issue 12: memory exhaustion via /auth).
  const max = Math.min(x.deps.maxAuthBodyBytes ?? DEFAULT_MAX_AUTH_BODY_BYTES, x.deps.maxBodyBytes);
  return checkBody(await x.readJson(max), checkKbsRequest);
}

/** SHA-384 unless the client lists supported algorithms that exclude it. */
function chooseHash(supported: unknown) {
  if (!Array.isArray(supported) || supported.length === 0) return 'sha384' as const;
  const lower = supported.filter((s): s is string => typeof s === 'string').map((s) => s.toLowerCase());
  if (lower.includes('sha384')) return 'sha384' as const;
  const pick = BINDING_HASH_ALGORITHMS.find((a) => lower.includes(a));
  return selectedBindingHash({ 'selected-hash-algorithm': pick ?? 'sha384' });
}
