import type { NodeLifecycle, NodeRecord } from '../state/ports.js';

/**
 * The state a reader sees: the stored state, except that an `active` node whose last successful
 * attestation (or, when it never had one, its first sighting) is older than `staleAfterMs` is
 * `stale`. Staleness is computed at read time and never stored.
 */
export function effectiveState(record: NodeRecord, nowMs: number, staleAfterMs: number): NodeLifecycle {
  if (record.state !== 'active') return record.state;
  const ref = Date.parse(staleMarker(record));
  return Number.isNaN(ref) || nowMs - ref > staleAfterMs ? 'stale' : 'active';
}

/** The time staleness counts from; also what the sweeper stores in `staleNotified` (one announcement per staleness). */
export function staleMarker(record: NodeRecord): string {
  return record.lastAttestedAt ?? record.firstSeenAt;
}

/** Whole seconds since the node's last successful attestation; undefined when it never had one. */
export function lastAttestedAgeS(record: NodeRecord, nowMs: number): number | undefined {
  if (record.lastAttestedAt === undefined) return undefined;
  const t = Date.parse(record.lastAttestedAt);
  return Number.isNaN(t) ? undefined : Math.max(0, Math.floor((nowMs - t) / 1000));
}
