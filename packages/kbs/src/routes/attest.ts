import { timingSafeEqual } from 'node:crypto';
import { checkAttestation, parseInitData, ProtocolError, runtimeDataDigest, type ParsedInitData } from '@keyhold/protocol';
import { KbsError } from '../errors.js';
import { SESSION_COOKIE } from '../session/cookie.js';
import { sessionIdOf } from '../session/new-session.js';
import { earClaims } from '../token/ear-claims.js';
import { checkBody } from './json-body.js';
import type { FlowAnswer, FlowExchange } from '../hot-path/flow-exchange.js';
import { auditEvent, errorCode } from '../owners/record-event.js';
import { nodeLabel } from '../owners/client-address.js';
import { emitUnidentifiedAttestation, recordAttestationVerdict, recordRefusedAttestation } from '../continuous/attest-hook.js';
import { NODE_KEY_CLAIM, nodeKeyBindingOf } from '../node-ca/node-key-binding.js';

/**
 * POST /kbs/v0/attest — appraise the evidence bound to this session's nonce and issue an EAR token.
 * The nonce is consumed by the first attempt with a well-formed body, successful or not, exactly
 * once across every replica sharing the state (an atomic check-and-set in the backend).
 */
export async function handleAttest(c: FlowExchange): Promise<FlowAnswer> {
  const deps = c.deps;
  const now = deps.now?.() ?? Date.now();
  const sessionId = sessionIdOf(c.cookie(SESSION_COOKIE));
  if (sessionId === undefined) throw new KbsError('SESSION_MISSING', 'no valid kbs-session-id cookie');
  const body = checkBody(await c.readJson(deps.maxBodyBytes), checkAttestation);

  // SECURITY: one nonce, one attestation: a second attestation on the same session (a replay of
  // captured evidence, or the same evidence sent to two replicas at once) is refused (replay).
  // consumeNonce is atomic in the state backend: exactly one caller wins, the others get NONCE_CONSUMED.
  const session = await deps.state.sessions.consumeNonce(sessionId);

  const runtime = body['runtime-data'];
  // SECURITY: the runtime data must carry this session's nonce, so evidence made for another
  // session or another KBS cannot be replayed here (replay / relay).
  if (!constantTimeEqualText(runtime.nonce, session.nonce)) {
    throw new KbsError('NONCE_MISMATCH', 'runtime-data nonce does not match the session nonce');
  }

  let initData: ParsedInitData | undefined;
  if (body['init-data'] != null) {
    try {
      initData = parseInitData(body['init-data']);
    } catch (err) {
      if (err instanceof ProtocolError) throw new KbsError('BAD_REQUEST', err.message, { cause: err });
      throw err;
    }
  }

  const appraiser = deps.appraisers.get(session.tee);
  if (appraiser === undefined) throw new KbsError('UNSUPPORTED_TEE', 'tee is not supported');
  const additionalEvidence = body['tee-evidence'].additional_evidence;
  // A node-certificate key the attester binds (node-ca/node-key-binding.ts); malformed → 400.
  const nodeKey = nodeKeyBindingOf(additionalEvidence);
  // The digest the evidence must carry: binds the nonce, the tee key and the additional evidence.
  const expectedReportData = runtimeDataDigest({ nonce: runtime.nonce, teePubkey: runtime['tee-pubkey'], additionalEvidence }, session.hashAlgorithm);

  // One view of the reference values for the whole appraisal and policy decision.
  const references = await deps.state.referenceValues.snapshot();
  let appraisal;
  /** The node, once the appraiser proved its identity (continuous attestation records it). */
  let identified: string | undefined;
  try {
    appraisal = await appraiser.appraise({
      evidence: body['tee-evidence'].primary_evidence,
      expectedReportData,
      ...(initData !== undefined ? { initDataDigest: initData.digest } : {}),
      session,
      references,
      now: new Date(now),
      teePubkey: runtime['tee-pubkey'],
      identified: (n) => {
        identified = n.nodeId;
      },
    });
  } catch (err) {
    deps.metrics?.count('attest_fail', session.tee);
    deps.owners?.metrics?.attestation({ tee: session.tee, status: errorCode(err) });
    if (err instanceof KbsError) {
      c.log.warn({ code: err.code, reason: err.message, tee: session.tee }, 'attestation refused');
    }
    const reason = err instanceof KbsError ? `${err.code}: ${err.message}` : errorCode(err);
    await auditEvent(c, 'attest', { tee: session.tee, node: identified, verdict: 'failed', reason });
    if (identified === undefined) {
      emitUnidentifiedAttestation(c, session.tee, 'failed', reason);
      throw err;
    }
    // An identified node's failure is recorded on its record (and may ban it: 403 NodeBanned).
    throw await recordRefusedAttestation(c, identified, err, session.tee);
  }

  const verdict = await deps.attestationPolicy.evaluate({ tee: session.tee, appraisal, references });
  const claims = earClaims({
    tee: session.tee,
    status: verdict.status,
    vector: verdict.vector,
    // The token names the policy and the version that appraised it, e.g. `default@3`.
    policyId: `${verdict.policyId}@${verdict.version ?? 0}`,
    teeClaims: appraisal.teeClaims,
    reportDataHex: appraisal.reportDataHex,
    nonce: runtime.nonce,
    teePubkey: runtime['tee-pubkey'],
    ...(appraisal.initDataHex !== undefined ? { initDataHex: appraisal.initDataHex } : {}),
    ...(initData !== undefined ? { initDataClaims: initData.data } : {}),
    ...(appraisal.extra !== undefined || nodeKey !== undefined ? { extra: { ...appraisal.extra, ...(nodeKey !== undefined ? { [NODE_KEY_CLAIM]: nodeKey } : {}) } } : {}),
    ...(verdict.reason !== undefined ? { reason: verdict.reason } : {}),
    build: deps.build,
  });
  const node = nodeLabel({ ...(appraisal.extra ?? {}), [session.tee]: appraisal.teeClaims }, session.tee);
  deps.owners?.metrics?.attestation({ tee: session.tee, status: verdict.status });
  if (verdict.status !== 'affirming') deps.owners?.metrics?.policyDenial({ kind: 'attestation', scope: verdict.version === undefined || verdict.version === 0 ? 'default' : 'global' });
  await auditEvent(c, 'attest', { tee: session.tee, node, verdict: verdict.status, policyId: verdict.policyId, policyVersion: verdict.version ?? 0, reason: verdict.reason });
  const policy = `${verdict.policyId}@${verdict.version ?? 0}`;
  // Every attestation of an identified node updates its record (one compare-and-swap); a banned or
  // revoked node, or one this verdict banned, gets no token (403 NodeBanned / NodeRevoked).
  if (identified !== undefined) await recordAttestationVerdict(c, identified, { status: verdict.status, policy, reason: verdict.reason }, session.tee);
  else emitUnidentifiedAttestation(c, session.tee, verdict.status, verdict.reason, policy);
  const token = await deps.signer.sign(claims);
  // What `/resource` by cookie needs, on whichever replica it lands.
  await deps.state.sessions.recordAttestation(session.id, { claims: claims as Record<string, unknown>, teePubkey: runtime['tee-pubkey'] });
  deps.metrics?.count('attest_ok', session.tee);
  // The request's child logger is made only when the line is logged (the flow exchange makes it lazily).
  if (deps.logger.isLevelEnabled('info')) c.log.info({ tee: session.tee, status: verdict.status, policy: verdict.policyId, node: appraisal.extra?.['node_id'] }, 'attested');
  return { body: { token } };
}

function constantTimeEqualText(a: string, b: string): boolean {
  const ab = Buffer.from(a, 'utf8');
  const bb = Buffer.from(b, 'utf8');
  if (ab.length !== bb.length) return false;
  return timingSafeEqual(ab, bb);
}
