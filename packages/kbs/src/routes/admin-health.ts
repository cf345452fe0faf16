import { hostname } from 'node:os';
import type { Context } from 'hono';
import type { KbsEnv } from '../app-env.js';
import { KbsError } from '../errors.js';

/** The requests whose latency the health summary reports: the KBS protocol, not admin calls or metrics. */
const PROTOCOL_ROUTES = new Set(['POST /kbs/v0/auth', 'POST /kbs/v0/attest', 'GET /kbs/v0/resource/:repository/:type/:tag']);
/** A path that names no resource, so the probe reads nothing real (and never a value). */
const PROBE = { repository: 'keyhold-health', type: 'probe', tag: 'none' } as const;

interface MetricValue {
  readonly value: number;
  readonly labels: Readonly<Record<string, string | number>>;
  readonly metricName?: string;
}

async function probe(fn: () => Promise<unknown>): Promise<boolean> {
  try {
    await fn();
    return true;
  } catch {
    return false;
  }
}

/** The q-quantile (0..1) of a cumulative histogram, upper bound of the bucket that reaches it (ms). */
function quantileMs(buckets: readonly { le: number; count: number }[], q: number): number | null {
  const total = buckets.at(-1)?.count ?? 0;
  if (total === 0) return null;
  const hit = buckets.find((b) => b.count >= q * total);
  return hit === undefined || !Number.isFinite(hit.le) ? null : hit.le * 1000;
}

/**
 * GET /kbs/v0/admin/health — what the console's Health view charts: this replica, whether the state
 * backend (`state.ping()`: embedded or Redis), secret storage, the policy store and the audit trail answer, cumulative counters (attestations, policy
 * denials, releases) and protocol-request latency (p50/p99 and the cumulative histogram buckets, so
 * a client can compute per-interval quantiles from two samples). Counts, never values. Admin.
 */
export async function handleAdminHealth(c: Context<KbsEnv>): Promise<Response> {
  const deps = c.get('deps');
  const metrics = deps.owners?.metrics;
  if (metrics === undefined) throw new KbsError('INVALID_RESOURCE_PATH', 'metrics are not enabled on this KBS');
  const [stateOk, storageOk, policiesOk] = await Promise.all([
    probe(() => deps.state.ping()),
    probe(async () => deps.resources.versions?.(PROBE)),
    probe(async () => deps.owners?.policies?.listPolicies()),
  ]);
  const all = (await metrics.registry.getMetricsAsJSON()) as unknown as { name: string; values: MetricValue[] }[];
  const sum = (name: string): number => (all.find((m) => m.name === name)?.values ?? []).reduce((n, v) => n + v.value, 0);
  const byLe = new Map<number, number>();
  for (const v of all.find((m) => m.name === 'keyhold_kbs_request_duration_seconds')?.values ?? []) {
    if (v.metricName !== 'keyhold_kbs_request_duration_seconds_bucket' || !PROTOCOL_ROUTES.has(`${String(v.labels['method'])} ${String(v.labels['route'])}`)) continue;
    const le = v.labels['le'] === '+Inf' ? Infinity : Number(v.labels['le']);
    byLe.set(le, (byLe.get(le) ?? 0) + v.value);
  }
  const buckets = [...byLe].map(([le, count]) => ({ le, count })).sort((a, b) => a.le - b.le);
  const audit = deps.owners?.audit;
  return c.json({
    replica: hostname(),
    build: deps.build,
    time: new Date((deps.now ?? Date.now)()).toISOString(),
    state: { backend: deps.state.backend, ok: stateOk },
    storage: { backend: deps.resources.backend ?? 'unknown', ok: storageOk },
    policies: { ok: deps.owners?.policies === undefined ? null : policiesOk },
    audit: audit === undefined ? { enabled: false } : { enabled: true, head: audit.head() ?? null },
    counters: {
      attestations: sum('keyhold_kbs_attestations_total'),
      denials: sum('keyhold_kbs_policy_denials_total'),
      releases: sum('keyhold_kbs_releases_total'),
    },
    latencyMs: { p50: quantileMs(buckets, 0.5), p99: quantileMs(buckets, 0.99) },
    latencyBuckets: buckets.map((b) => ({ le: Number.isFinite(b.le) ? b.le : '+Inf', count: b.count })),
  });
}
