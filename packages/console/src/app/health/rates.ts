/** One `GET /kbs/v0/admin/health` answer, the parts the charts use. */
export interface HealthSample {
  /** Client clock when the sample was taken (ms). */
  readonly atMs: number;
  readonly counters: { readonly attestations: number; readonly denials: number; readonly releases: number };
  readonly latencyBuckets: readonly { readonly le: number | '+Inf'; readonly count: number }[];
}

export interface HealthRates {
  readonly atMs: number;
  readonly attestationsPerSec: number;
  readonly denialsPerSec: number;
  readonly releasesPerSec: number;
  /** p99 of protocol requests in the interval (bucket upper bound, ms); null when none or beyond the last finite bucket. */
  readonly p99Ms: number | null;
}

/**
 * Rates between two samples, and the interval's p99 latency from the difference of the cumulative
 * histograms. A counter that went down (KBS restarted) counts from zero.
 */
export function ratesBetween(prev: HealthSample, next: HealthSample): HealthRates {
  const dt = Math.max(0.001, (next.atMs - prev.atMs) / 1000);
  const rate = (a: number, b: number): number => (b >= a ? b - a : b) / dt;
  const before = new Map(prev.latencyBuckets.map((b) => [String(b.le), b.count]));
  const restarted = next.counters.attestations < prev.counters.attestations || (next.latencyBuckets.at(-1)?.count ?? 0) < (prev.latencyBuckets.at(-1)?.count ?? 0);
  const deltas = next.latencyBuckets.map((b) => ({ le: b.le, count: restarted ? b.count : b.count - (before.get(String(b.le)) ?? 0) }));
  return {
    atMs: next.atMs,
    attestationsPerSec: rate(prev.counters.attestations, next.counters.attestations),
    denialsPerSec: rate(prev.counters.denials, next.counters.denials),
    releasesPerSec: rate(prev.counters.releases, next.counters.releases),
    p99Ms: quantileMs(deltas, 0.99),
  };
}

/** The q-quantile of a cumulative histogram (seconds buckets) as the upper bound of the bucket reaching it, in ms. */
export function quantileMs(buckets: readonly { readonly le: number | '+Inf'; readonly count: number }[], q: number): number | null {
  const total = buckets.at(-1)?.count ?? 0;
  if (total <= 0) return null;
  const hit = buckets.find((b) => b.count >= q * total);
  return hit === undefined || hit.le === '+Inf' ? null : hit.le * 1000;
}
