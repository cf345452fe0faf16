import { KbsError } from '../../errors.js';
import { isRefusedNode, nodeRefusal } from '../../identity/node-records.js';
import { isNodeId } from '../../state/node-record.js';
import type { NodeRecord, NodeState } from '../../state/ports.js';
import { claimAt } from '../../token/ear-claims.js';
import { NODE_ID_CLAIM } from './identity-extension.js';

const NODE_ID_PATH = ['submods', 'cpu0', 'ear.veraison.annotated-evidence', NODE_ID_CLAIM] as const;

/** The node id a verified token names (EK hash or `ak:` id), undefined when it names none. */
export function nodeIdOfClaims(claims: Record<string, unknown>): string | undefined {
  const nodeId = claimAt(claims, NODE_ID_PATH);
  if (nodeId === undefined) return undefined;
  // SECURITY: a node id of another shape was not written by this KBS's appraiser (the token is
  // signed, so this is a bug or a foreign token): refuse rather than skip the checks.
  if (typeof nodeId !== 'string' || !isNodeId(nodeId)) throw new KbsError('TOKEN_INVALID', 'token carries a malformed node id');
  return nodeId;
}

/**
 * Refuse a release to a node the owner revoked, or a failed appraisal banned, after its token was
 * issued. Reads the node record from the state backend on every call (no cache), so a revocation
 * or ban through any replica applies to the next request on every replica. Tokens without a node
 * identity are not affected. Returns the node's record (for freshness), when it has one.
 */
export async function assertNodeNotRevoked(claims: Record<string, unknown>, nodes: Pick<NodeState, 'get'>): Promise<NodeRecord | undefined> {
  const nodeId = nodeIdOfClaims(claims);
  if (nodeId === undefined) return undefined;
  let record;
  try {
    record = await nodes.get(nodeId);
  } catch (err) {
    // SECURITY: an unreadable node store must not read as "not revoked" (fail closed).
    throw new KbsError('STORAGE_UNAVAILABLE', 'identity store is unavailable', { cause: err });
  }
  // SECURITY: revocation and bans take effect at once, also for still-valid bearer tokens and
  // attested sessions (issue 3: "after which nothing is released to it"; issue 13: bans).
  if (isRefusedNode(record)) throw nodeRefusal(record!);
  return record;
}
