import { KbsError } from '../../errors.js';
import { isRefusedNode, nodeRefusal } from '../../identity/node-records.js';
import type { NodeState } from '../../state/ports.js';
import { claimAt } from '../../token/ear-claims.js';
import { NODE_ID_CLAIM } from './identity-extension.js';

const NODE_ID_PATH = ['submods', 'cpu0', 'ear.veraison.annotated-evidence', NODE_ID_CLAIM] as const;

/**
 * Refuse a release to a node the owner revoked after its token was issued. Reads the node record
 * from the state backend on every call (no cache), so a revocation through any replica applies to
 * the next request on every replica. Tokens without a node identity (Trustee's `trusted_ak` path)
 * are not affected.
 */
export async function assertNodeNotRevoked(claims: Record<string, unknown>, nodes: Pick<NodeState, 'get'>): Promise<void> {
  const nodeId = claimAt(claims, NODE_ID_PATH);
  if (nodeId === undefined) return;
  // SECURITY: a node id that is not an EK hash was not written by this KBS's identity extension (the
  // token is signed, so this is a bug or a foreign token): refuse rather than skip the check.
  if (typeof nodeId !== 'string' || !/^[0-9a-f]{64}$/.test(nodeId)) throw new KbsError('TOKEN_INVALID', 'token carries a malformed node id');
  let record;
  try {
    record = await nodes.get(nodeId);
  } catch (err) {
    // SECURITY: an unreadable node store must not read as "not revoked" (fail closed).
    throw new KbsError('STORAGE_UNAVAILABLE', 'identity store is unavailable', { cause: err });
  }
  // SECURITY: revocation takes effect at once, also for still-valid bearer tokens and attested
  // sessions (issue 3: "after which nothing is released to it").
  if (isRefusedNode(record)) throw nodeRefusal(record!);
}
