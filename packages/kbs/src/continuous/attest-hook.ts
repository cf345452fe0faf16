/**
 * Continuous attestation's steps inside `/attest` (routes/attest.ts calls these; the logic lives
 * here so the hot route stays small): record every attestation of an identified node on its node
 * record (one compare-and-swap), ban on failure, refuse banned and revoked nodes, and emit the
 * `attestation` and `node.*` events.
 */
import type { RequestScope } from '../request-scope.js';
import { KbsError } from '../errors.js';
import { emitEvent } from '../notify/emit-event.js';
import { errorCode } from '../owners/record-event.js';
import { DEFAULT_CONTINUOUS } from './continuous-config.js';
import { nodeSpiffeId } from './node-identity.js';
import { recordNodeAttestation, type AttestationOutcome, type RecordedAttestation } from './record-attestation.js';

/** Without `[continuous]` deps (in-process apps, tests) records are kept but nothing is banned. */
function settingsOf(c: RequestScope) {
  const cont = c.deps.continuous;
  return cont === undefined ? { ...DEFAULT_CONTINUOUS, banOnFailure: false } : cont.settings;
}

function spiffeOf(c: RequestScope, nodeId: string): string | undefined {
  const td = c.deps.continuous?.trustDomain;
  return td === undefined ? undefined : nodeSpiffeId(td, nodeId);
}

async function record(c: RequestScope, nodeId: string, outcome: AttestationOutcome, tee: string): Promise<RecordedAttestation> {
  const deps = c.deps;
  const settings = settingsOf(c);
  const recorded = await recordNodeAttestation(deps.state.nodes, { nodeId, outcome, now: new Date(deps.now?.() ?? Date.now()), banOnFailure: settings.banOnFailure }, deps.continuous?.nodeCache);
  const spiffeId = spiffeOf(c, nodeId);
  const base = { node: nodeId, tee, ...(spiffeId !== undefined ? { spiffeId } : {}) };
  emitEvent(c, {
    type: 'attestation',
    ...base,
    status: outcome.kind === 'refused' ? 'failed' : outcome.status,
    ...(outcome.kind === 'verdict' ? { policy: outcome.policy } : {}),
    ...(outcome.reason !== undefined ? { reason: outcome.reason } : {}),
  });
  for (const t of recorded.transitions) {
    emitEvent(c, { type: t.type, ...base, ...(t.reason !== undefined ? { reason: t.reason } : {}) });
    if (t.type === 'node.banned') c.log.warn({ node: nodeId, reason: t.reason }, 'node banned');
  }
  return recorded;
}

/**
 * The evidence of an identified node was refused: record the failure (banning an active node when
 * configured). Returns the error to answer with: NODE_BANNED naming the reason when the node is
 * banned (by this failure or before), else the appraisal's own error.
 */
export async function recordRefusedAttestation(c: RequestScope, nodeId: string, err: unknown, tee: string): Promise<unknown> {
  const reason = err instanceof KbsError ? err.message : errorCode(err);
  const recorded = await record(c, nodeId, { kind: 'refused', reason }, tee);
  return recorded.refusal ?? err;
}

/**
 * The policy decided for an identified node: record the verdict; throws NODE_BANNED (this verdict
 * banned it, or it was banned before) or NODE_REVOKED, so the node gets no token.
 */
export async function recordAttestationVerdict(c: RequestScope, nodeId: string, verdict: { status: string; policy: string; reason?: string | undefined }, tee: string): Promise<void> {
  const recorded = await record(c, nodeId, { kind: 'verdict', status: verdict.status, policy: verdict.policy, ...(verdict.reason !== undefined ? { reason: verdict.reason } : {}) }, tee);
  if (recorded.refusal !== undefined) throw recorded.refusal;
}

/** An attestation no node could be named for (a failure before identification, or a TEE without node identity). */
export function emitUnidentifiedAttestation(c: RequestScope, tee: string, status: string, reason?: string, policy?: string): void {
  emitEvent(c, { type: 'attestation', tee, status, ...(reason !== undefined ? { reason } : {}), ...(policy !== undefined ? { policy } : {}) });
}
