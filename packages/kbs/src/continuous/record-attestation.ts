/**
 * The node record's side of every attestation of an identified node (issue 13): one read-modify-
 * write (`updateNode`, compare-and-swap with retries) that records the sighting and the verdict,
 * bans an active node on failure when configured, and says which node events that caused.
 *
 * "Identified" means the node's identity was proven in this attestation: the quote verified and was
 * signed by an AK the owner trusts (bound to a trusted EK by credential activation, or listed in
 * `trusted_ak`). Failures before that (a bad quote, a wrong activation answer) are not attributed
 * to any node: anyone can name a victim's EK, so such failures must never ban it.
 *
 * Ban rule (`[continuous] ban_on_failure`, default true): an `active` node whose evidence was
 * refused after identification, or whose verdict is `contraindicated`, becomes `banned` with the
 * first failing reason. `warning` and `none` are recorded but do not ban. A banned or revoked node
 * gets no token even when this appraisal passed (the owner must unban or re-admit it).
 */
import { KbsError } from '../errors.js';
import { isRefusedNode, nodeRefusal } from '../identity/node-records.js';
import { updateNode } from '../state/node-update.js';
import type { NodeRecord, NodeRecordInput, NodeState, NodeVerdict } from '../state/ports.js';
import { staleMarker } from './node-lifecycle.js';

export type AttestationOutcome =
  /** The policy decided: an EAR status, `id@version`, the first reason it is not affirming. */
  | { readonly kind: 'verdict'; readonly status: string; readonly policy: string; readonly reason?: string }
  /** The evidence was refused after the node was identified (e.g. an event log that does not replay). */
  | { readonly kind: 'refused'; readonly reason: string };

export interface NodeTransition {
  readonly type: 'node.banned' | 'node.recovered';
  readonly reason?: string;
}

export interface RecordedAttestation {
  readonly record: NodeRecord;
  readonly transitions: readonly NodeTransition[];
  /** Set when the node may not get a token: NODE_BANNED (now or before) or NODE_REVOKED. */
  readonly refusal?: KbsError;
}

export interface RecordAttestationInput {
  readonly nodeId: string;
  readonly outcome: AttestationOutcome;
  readonly now: Date;
  readonly banOnFailure: boolean;
}

const MAX_REASON_CHARS = 512;

/** Whether this outcome bans an active node (when banning is on). */
export function isBanningOutcome(outcome: AttestationOutcome): boolean {
  return outcome.kind === 'refused' || outcome.status === 'contraindicated';
}

/**
 * The last record this process stored or saw per node (bounded, least recently used out). Only a
 * hint for the expected version of the first compare-and-swap: when another replica wrote since,
 * the swap fails and the update reads the record and retries (state rule 3: a cache behind a
 * version check). With it, an attestation costs one round trip to the state instead of two.
 */
export class NodeRecordCache {
  readonly #max: number;
  readonly #records = new Map<string, NodeRecord>();

  constructor(maxNodes = 10_000) {
    if (!Number.isSafeInteger(maxNodes) || maxNodes < 1) throw new TypeError('maxNodes must be a positive integer');
    this.#max = maxNodes;
  }

  get(nodeId: string): NodeRecord | undefined {
    return this.#records.get(nodeId);
  }

  set(record: NodeRecord): void {
    this.#records.delete(record.nodeId);
    this.#records.set(record.nodeId, record);
    if (this.#records.size > this.#max) this.#records.delete(this.#records.keys().next().value!);
  }

  delete(nodeId: string): void {
    this.#records.delete(nodeId);
  }
}

export async function recordNodeAttestation(nodes: NodeState, input: RecordAttestationInput, cache?: NodeRecordCache): Promise<RecordedAttestation> {
  const at = input.now.toISOString();
  const { outcome } = input;
  const reason = (outcome.kind === 'refused' ? outcome.reason : outcome.reason)?.slice(0, MAX_REASON_CHARS);
  const verdict: NodeVerdict = {
    status: outcome.kind === 'refused' ? 'failed' : outcome.status,
    ...(outcome.kind === 'verdict' ? { policy: outcome.policy } : {}),
    ...(reason !== undefined ? { reason } : {}),
    at,
  };
  const affirming = outcome.kind === 'verdict' && outcome.status === 'affirming';
  let transitions: NodeTransition[] = [];
  const change = (prev: NodeRecord | undefined): NodeRecordInput => {
    transitions = [];
    const base: NodeRecordInput =
      prev !== undefined
        ? withoutVersion(prev)
        : {
            nodeId: input.nodeId,
            ...(input.nodeId.startsWith('ak:') ? {} : { ekHash: input.nodeId }),
            akName: null,
            firstSeenAt: at,
            state: 'active',
          };
    const next: { -readonly [K in keyof NodeRecordInput]: NodeRecordInput[K] } = { ...base, lastSeenAt: at, lastVerdict: verdict };
    if (base.state === 'active') {
      if (input.banOnFailure && isBanningOutcome(outcome)) {
        next.state = 'banned';
        next.banned = { at, reason: reason ?? verdict.status };
        transitions.push({ type: 'node.banned', reason: next.banned.reason });
      } else if (affirming) {
        // Recovered: the last verdict did not grant a token (it failed, was not affirming, or passed
        // while the node was banned: then lastAttestedAt is older), or its staleness was announced.
        const failedBefore = prev?.lastVerdict !== undefined && prev.lastVerdict.at !== prev.lastAttestedAt;
        const staleAnnounced = prev !== undefined && prev.staleNotified !== undefined && prev.staleNotified === staleMarker(prev);
        next.lastAttestedAt = at;
        if (failedBefore || staleAnnounced) transitions.push({ type: 'node.recovered' });
      }
    }
    return next;
  };
  let stored: NodeRecord | undefined;
  const hint = cache?.get(input.nodeId);
  // One round trip when the hint is current; a lost swap falls back to read-modify-write.
  if (hint !== undefined) stored = await nodes.compareAndSwap(input.nodeId, hint.version, change(hint));
  stored ??= await updateNode(nodes, input.nodeId, change);
  if (stored === undefined) throw new KbsError('INTERNAL', 'node record vanished while recording an attestation');
  cache?.set(stored);
  // SECURITY: a banned or revoked node gets nothing, also when this appraisal passed or when the
  // ban landed on another replica between our read and our write (decided on the stored record).
  if (isRefusedNode(stored)) return { record: stored, transitions, refusal: nodeRefusal(stored) };
  return { record: stored, transitions };
}

function withoutVersion(record: NodeRecord): NodeRecordInput {
  const { version: _version, ...rest } = record;
  return rest;
}
