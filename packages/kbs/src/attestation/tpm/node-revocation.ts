import { KbsError } from '../../errors.js';
import type { EnrolmentStore } from '../../identity/enrolment-store.js';
import { claimAt } from '../../token/ear-claims.js';
import { NODE_ID_CLAIM } from './identity-extension.js';

const NODE_ID_PATH = ['submods', 'cpu0', 'ear.veraison.annotated-evidence', NODE_ID_CLAIM] as const;

/**
 * Refuse a release to a node the owner revoked after its token was issued. Tokens without a node
 * identity (Trustee's `trusted_ak` path) are not affected.
 */
export async function assertNodeNotRevoked(claims: Record<string, unknown>, enrolments: EnrolmentStore | undefined): Promise<void> {
  if (enrolments === undefined) return;
  const nodeId = claimAt(claims, NODE_ID_PATH);
  if (nodeId === undefined) return;
  // SECURITY: a node id that is not an EK hash was not written by this KBS's identity extension (the
  // token is signed, so this is a bug or a foreign token): refuse rather than skip the check.
  if (typeof nodeId !== 'string' || !/^[0-9a-f]{64}$/.test(nodeId)) throw new KbsError('TOKEN_INVALID', 'token carries a malformed node id');
  let record;
  try {
    record = await enrolments.get(nodeId);
  } catch (err) {
    // SECURITY: an unreadable enrolment store must not read as "not revoked" (fail closed).
    throw new KbsError('STORAGE_UNAVAILABLE', 'identity store is unavailable', { cause: err });
  }
  // SECURITY: revocation takes effect at once, also for still-valid bearer tokens and attested
  // sessions (issue 3: "after which nothing is released to it").
  if (record?.revoked === true) throw new KbsError('NODE_REVOKED', 'this node has been revoked by the owner');
}
