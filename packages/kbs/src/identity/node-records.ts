/**
 * The KBS's steps on node records (state port `NodeState`): enrol after credential activation,
 * revoke, remove, and the revocation check. Each write is one `updateNode` (compare-and-swap with
 * retries), so concurrent writers on any replica never undo each other: a revocation racing an
 * enrolment leaves the node revoked, whichever lands first.
 *
 * node id = hex SHA-256 of the EK DER SPKI (identity nodes). A record is created only by the KBS
 * after activation succeeded, or by the owner revoking a node that never enrolled.
 */
import { KbsError } from '../errors.js';
import { updateNode } from '../state/node-update.js';
import type { NodeRecord, NodeRecordInput, NodeState } from '../state/ports.js';
import type { EkTrustVia } from '../attestation/tpm/ek-trust.js';
import { normaliseEkHash } from './ek-hash.js';

/** True when the owner revoked (or a failed appraisal banned) the node: nothing is issued or released to it. */
export function isRefusedNode(record: NodeRecord | undefined): boolean {
  return record !== undefined && (record.state === 'revoked' || record.state === 'banned');
}

/** The refusal for a revoked or banned node (403 NodeRevoked). */
export function nodeRefusal(record: NodeRecord): KbsError {
  return new KbsError('NODE_REVOKED', record.state === 'banned' ? 'this node is banned until the owner lifts the ban' : 'this node has been revoked by the owner');
}

/** A record without its version: what `updateNode`'s change function returns. */
function withoutVersion(record: NodeRecord): NodeRecordInput {
  const { version: _version, ...rest } = record;
  return rest;
}

/**
 * Bind `akName` to the node (new node, or a changed AK after re-activation). Throws NODE_REVOKED
 * when the node is revoked or banned, also when that happened after the caller last read it.
 */
export async function enrolNode(nodes: NodeState, input: { nodeId: string; akName: string; now: Date; ekTrust?: EkTrustVia }): Promise<NodeRecord> {
  const nodeId = normaliseEkHash(input.nodeId);
  const at = input.now.toISOString();
  const stored = await updateNode(nodes, nodeId, (prev) => {
    // SECURITY: a revoked node must not un-revoke itself by attesting again (issue 3: "after which
    // nothing is released to it"); checked inside the compare-and-swap, so a revocation that lands
    // between our read and our write wins.
    if (isRefusedNode(prev)) throw nodeRefusal(prev!);
    const base = prev !== undefined ? withoutVersion(prev) : undefined;
    const { ekTrust: _old, ...kept } = base ?? ({} as Partial<NodeRecordInput>);
    return {
      ...kept,
      nodeId,
      ekHash: nodeId,
      akName: input.akName,
      enrolledAt: at,
      ...(input.ekTrust !== undefined ? { ekTrust: input.ekTrust } : {}),
      firstSeenAt: prev?.firstSeenAt ?? at,
      lastSeenAt: at,
      state: 'active',
    };
  });
  if (stored === undefined) throw new KbsError('INTERNAL', 'node record vanished while enrolling');
  return stored;
}

/** Mark the node revoked (creating a revoked record when it never enrolled). Idempotent. */
export async function revokeNode(nodes: NodeState, nodeIdIn: string, now: Date): Promise<NodeRecord> {
  const nodeId = normaliseEkHash(nodeIdIn);
  const at = now.toISOString();
  const stored = await updateNode(nodes, nodeId, (prev) => {
    if (prev?.state === 'revoked') return undefined;
    const base: NodeRecordInput = prev !== undefined ? withoutVersion(prev) : { nodeId, ekHash: nodeId, akName: null, firstSeenAt: at, state: 'revoked' };
    return { ...base, state: 'revoked', revokedAt: at };
  });
  if (stored === undefined) throw new KbsError('INTERNAL', 'node record vanished while revoking');
  return stored;
}

/** Remove the record entirely (the owner re-admits a node; it must activate again). False when absent. */
export async function removeNode(nodes: NodeState, nodeIdIn: string): Promise<boolean> {
  const nodeId = normaliseEkHash(nodeIdIn);
  let existed = false;
  await updateNode(nodes, nodeId, (prev) => {
    existed = prev !== undefined;
    return prev === undefined ? undefined : 'delete';
  });
  return existed;
}

/** The admin API's view of a record: the stored fields plus `revoked` (what `keyhold node list` reads). */
export function nodeView(record: NodeRecord): NodeRecord & { readonly revoked: boolean } {
  return { ...record, revoked: record.state === 'revoked' };
}
