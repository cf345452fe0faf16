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
import { IdentityStoreError } from './errors.js';
import { isNodeId } from '../state/node-record.js';

/**
 * Normalise a node id from an admin path: an EK hash (64 hex, any case) or `ak:` + 64 hex.
 * Throws EK_HASH_INVALID (400) for anything else.
 */
export function normaliseNodeId(id: string): string {
  const v = typeof id === 'string' ? id.toLowerCase() : '';
  if (!v.startsWith('ak:')) return normaliseEkHash(v);
  // SECURITY: node ids become map keys, file names and Redis hash fields; only the two id shapes
  // pass (path traversal, key injection).
  if (!/^ak:[0-9a-f]{64}$/.test(v) || !isNodeId(v)) throw new IdentityStoreError('EK_HASH_INVALID', 'a node id is 64 hex characters or ak:<64 hex>');
  return v;
}

/** True when the owner revoked (or a failed appraisal banned) the node: nothing is issued or released to it. */
export function isRefusedNode(record: NodeRecord | undefined): boolean {
  return record !== undefined && (record.state === 'revoked' || record.state === 'banned');
}

/** The refusal for a banned (403 NodeBanned, naming the reason) or revoked (403 NodeRevoked) node. */
export function nodeRefusal(record: NodeRecord): KbsError {
  if (record.state === 'banned') {
    const why = record.banned?.reason;
    return new KbsError('NODE_BANNED', `this node is banned until the owner lifts the ban${why !== undefined ? `: ${why.slice(0, 512)}` : ''}`);
  }
  return new KbsError('NODE_REVOKED', 'this node has been revoked by the owner');
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
  const nodeId = normaliseNodeId(nodeIdIn);
  const at = now.toISOString();
  const stored = await updateNode(nodes, nodeId, (prev) => {
    if (prev?.state === 'revoked') return undefined;
    const base: NodeRecordInput = prev !== undefined ? withoutVersion(prev) : { nodeId, ...(nodeId.startsWith('ak:') ? {} : { ekHash: nodeId }), akName: null, firstSeenAt: at, state: 'revoked' };
    return { ...base, state: 'revoked', revokedAt: at };
  });
  if (stored === undefined) throw new KbsError('INTERNAL', 'node record vanished while revoking');
  return stored;
}

/** Remove the record entirely (the owner re-admits a node; it must activate again). False when absent. */
export async function removeNode(nodes: NodeState, nodeIdIn: string): Promise<boolean> {
  const nodeId = normaliseNodeId(nodeIdIn);
  let existed = false;
  await updateNode(nodes, nodeId, (prev) => {
    existed = prev !== undefined;
    return prev === undefined ? undefined : 'delete';
  });
  return existed;
}

/**
 * Lift a ban: `banned` → `active` (the `banned` member removed; the failed verdict stays, so the
 * next affirming attestation announces `node.recovered`). Returns the record and whether it changed;
 * undefined when the node has no record. A node that is not banned is returned unchanged.
 */
export async function unbanNode(nodes: NodeState, nodeIdIn: string): Promise<{ readonly record: NodeRecord; readonly changed: boolean } | undefined> {
  const nodeId = normaliseNodeId(nodeIdIn);
  let changed = false;
  const stored = await updateNode(nodes, nodeId, (prev) => {
    changed = false;
    if (prev === undefined || prev.state !== 'banned') return undefined;
    const { banned: _banned, ...rest } = withoutVersion(prev);
    changed = true;
    return { ...rest, state: 'active' };
  });
  return stored === undefined ? undefined : { record: stored, changed };
}

/** The admin API's view of a record: the stored fields plus `revoked` (what `keyhold node list` reads). */
export function nodeView(record: NodeRecord): NodeRecord & { readonly revoked: boolean } {
  return { ...record, revoked: record.state === 'revoked' };
}
