import { StateError } from '../errors.js';
import { checkExpectedVersion, checkNodeId, checkNodeInput, decodeStoredNode, isNodeId, MAX_NODE_VERSION, storedNode } from '../node-record.js';
import type { NodeLifecycle, NodeRecord, NodeRecordInput, NodeState } from '../ports.js';
import type { JournalCodec, JournalStore } from './journal-store.js';

const LIFECYCLES: readonly NodeLifecycle[] = ['active', 'stale', 'banned', 'revoked'];
const DEFAULT_PAGE = 100;
const MAX_PAGE = 1000;

/** The journal codec of node records: the record with its version, schema-checked on read. */
export const NODE_CODEC: JournalCodec<NodeRecord> = {
  encode: (_key, value) => value,
  decode(key, raw) {
    if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new StateError('STATE_CORRUPT', `node record ${key.slice(0, 80)} is corrupt: not an object`);
    const { version, ...rest } = raw as { version?: unknown };
    return decodeStoredNode(key, JSON.stringify(rest), version as number);
  },
  isKey: isNodeId,
};

/**
 * Node records of one process: a JournalStore (memory plus snapshot and journal in the data dir,
 * or memory only). Compare-and-swap is decided inside the store's serial write queue against every
 * write queued before it, so concurrent updates in this process never lose each other.
 */
export class EmbeddedNodeState implements NodeState {
  readonly #store: JournalStore<NodeRecord>;
  #sorted: { keysVersion: number; ids: string[] } | undefined;

  constructor(store: JournalStore<NodeRecord>) {
    this.#store = store;
  }

  async get(nodeId: string): Promise<NodeRecord | undefined> {
    checkNodeId(nodeId);
    return this.#store.get(nodeId);
  }

  async compareAndSwap(nodeId: string, expectedVersion: number, next: NodeRecordInput): Promise<NodeRecord | undefined> {
    checkExpectedVersion(expectedVersion);
    const { record } = checkNodeInput(nodeId, next);
    return this.#store.mutate((view) => {
      const cur = view.get(nodeId)?.version ?? 0;
      if (cur !== expectedVersion) return { changes: [], result: undefined };
      if (cur >= MAX_NODE_VERSION) throw new StateError('STATE_CONFLICT', 'node record version is exhausted');
      const stored = storedNode(record, cur + 1);
      return { changes: [[nodeId, stored]], result: stored };
    });
  }

  async compareAndDelete(nodeId: string, expectedVersion: number): Promise<boolean> {
    checkNodeId(nodeId);
    checkExpectedVersion(expectedVersion);
    return this.#store.mutate((view) => {
      const cur = view.get(nodeId);
      if (cur === undefined || cur.version !== expectedVersion) return { changes: [], result: false };
      return { changes: [[nodeId, undefined]], result: true };
    });
  }

  async list(options: { readonly state?: NodeLifecycle; readonly after?: string; readonly limit?: number } = {}): Promise<{ readonly nodes: readonly NodeRecord[]; readonly next?: string }> {
    const { state, after, limit } = checkListOptions(options);
    const ids = this.#sortedIds();
    let i = after === undefined ? 0 : upperBound(ids, after);
    const nodes: NodeRecord[] = [];
    for (; i < ids.length && nodes.length < limit; i++) {
      const r = this.#store.get(ids[i]!);
      if (r !== undefined && (state === undefined || r.state === state)) nodes.push(r);
    }
    const more = i < ids.length;
    return more && nodes.length > 0 ? { nodes, next: nodes[nodes.length - 1]!.nodeId } : more ? { nodes, next: ids[i - 1]! } : { nodes };
  }

  #sortedIds(): string[] {
    const v = this.#store.keysVersion;
    if (this.#sorted?.keysVersion !== v) this.#sorted = { keysVersion: v, ids: [...this.#store.keys()].sort() };
    return this.#sorted.ids;
  }
}

/** Validate list options (programmer error → TypeError). */
export function checkListOptions(options: { readonly state?: NodeLifecycle; readonly after?: string; readonly limit?: number }): {
  state: NodeLifecycle | undefined;
  after: string | undefined;
  limit: number;
} {
  const limit = options.limit ?? DEFAULT_PAGE;
  if (!Number.isSafeInteger(limit) || limit < 1 || limit > MAX_PAGE) throw new TypeError(`list limit must be an integer in 1..${MAX_PAGE}`);
  if (options.state !== undefined && !LIFECYCLES.includes(options.state)) throw new TypeError('list state must be a node lifecycle');
  if (options.after !== undefined && (typeof options.after !== 'string' || options.after.length > 300)) throw new TypeError('list after must be a node id');
  return { state: options.state, after: options.after, limit };
}

/** First index whose id is greater than `after`. */
function upperBound(ids: readonly string[], after: string): number {
  let lo = 0;
  let hi = ids.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (ids[mid]! <= after) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}
