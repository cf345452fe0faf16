import { describe, expect, it } from 'vitest';
import { quantileMs, ratesBetween, type HealthSample } from './rates.js';

const sample = (atMs: number, attestations: number, denials: number, buckets: [number | '+Inf', number][]): HealthSample => ({
  atMs,
  counters: { attestations, denials, releases: 0 },
  latencyBuckets: buckets.map(([le, count]) => ({ le, count })),
});

describe('health rates', () => {
  it('gives per-second rates and the interval p99 from histogram differences', () => {
    const a = sample(0, 10, 1, [[0.01, 100], [0.1, 100], ['+Inf', 100]]);
    // In the next 2 s: 20 more attestations, 2 denials; 10 requests, one of them slow (<= 100 ms).
    const b = sample(2000, 30, 3, [[0.01, 109], [0.1, 110], ['+Inf', 110]]);
    expect(ratesBetween(a, b)).toEqual({ atMs: 2000, attestationsPerSec: 10, denialsPerSec: 1, releasesPerSec: 0, p99Ms: 100 });
    // Over the whole lifetime the slow request is under 1 %: p99 stays at 10 ms.
    expect(quantileMs(b.latencyBuckets, 0.99)).toBe(10);
  });

  it('restarts from zero when the KBS restarted, and gives null without requests or past the last bucket', () => {
    const a = sample(0, 50, 5, [[0.01, 100], ['+Inf', 100]]);
    const b = sample(1000, 3, 0, [[0.01, 2], ['+Inf', 3]]);
    expect(ratesBetween(a, b)).toMatchObject({ attestationsPerSec: 3, denialsPerSec: 0, p99Ms: null });
    expect(quantileMs([], 0.99)).toBeNull();
    expect(quantileMs([{ le: 0.01, count: 0 }, { le: '+Inf', count: 0 }], 0.5)).toBeNull();
  });
});
