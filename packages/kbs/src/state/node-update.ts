import { StateError } from './errors.js';
import type { NodeRecord, NodeRecordInput, NodeState } from './ports.js';

/** Compare-and-swap attempts before `updateNode` gives up with STATE_CONFLICT. */
export const MAX_NODE_UPDATE_ATTEMPTS = 32;

/**
 * Read-modify-write one node record with compare-and-swap retries, so concurrent writers on any
 * replica never lose each other's changes. `change` gets the current record (undefined when absent)
 * and returns the record to write, `undefined` to leave it as it is, or `'delete'`. It may run more
 * than once (after a conflict) and must not have side effects; it may throw to abort.
 * Returns the record as stored afterwards (undefined when absent or deleted).
 */
export async function updateNode(
  nodes: NodeState,
  nodeId: string,
  change: (prev: NodeRecord | undefined) => NodeRecordInput | undefined | 'delete',
): Promise<NodeRecord | undefined> {
  for (let attempt = 0; attempt < MAX_NODE_UPDATE_ATTEMPTS; attempt++) {
    const prev = await nodes.get(nodeId);
    const next = change(prev);
    if (next === undefined) return prev;
    if (next === 'delete') {
      if (prev === undefined) return undefined;
      if (await nodes.compareAndDelete(nodeId, prev.version)) return undefined;
      continue;
    }
    // SECURITY: a change function must not move a record to another id (confused record update).
    if (next.nodeId !== nodeId) throw new TypeError('updateNode: the record id must not change');
    const stored = await nodes.compareAndSwap(nodeId, prev?.version ?? 0, next);
    if (stored !== undefined) return stored;
  }
  throw new StateError('STATE_CONFLICT', `node record ${nodeId.slice(0, 80)} changed ${MAX_NODE_UPDATE_ATTEMPTS} times during one update`);
}
