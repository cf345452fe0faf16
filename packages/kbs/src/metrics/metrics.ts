import { Counter, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

export interface MetricsOptions {
  /** Also export Node process metrics (CPU, memory, event loop). Default true. */
  readonly processMetrics?: boolean;
  /** Distinct repository label values before further ones are counted as `other`. Default 1000. */
  readonly maxRepositoryLabels?: number;
}

export interface KbsMetrics {
  readonly registry: Registry;
  /** `route` is the route pattern (e.g. `/kbs/v0/resource/:repo/:type/:tag`), never the raw path. */
  observeRequest(labels: { readonly method: string; readonly route: string; readonly status: number }, seconds: number): void;
  attestation(labels: { readonly tee: string; readonly status: string }): void;
  policyDenial(labels: { readonly kind: 'resource' | 'attestation'; readonly scope: string }): void;
  release(repository: string): void;
  rateLimitHit(scope: string): void;
  /** Events stored in the state's event log (issue 13). */
  eventsPublished(count: number): void;
  /** Events dropped before they were stored: `buffer_full`, `backend` (unavailable after retries), `invalid`. */
  eventsDropped(reason: 'buffer_full' | 'backend' | 'invalid', count: number): void;
  /** Webhook delivery attempts: `ok` (2xx), `failed` (retried later). */
  webhookDelivery(result: 'ok' | 'failed'): void;
  /** Prometheus text exposition. */
  render(): Promise<string>;
  readonly contentType: string;
}

/**
 * Prometheus metrics on a registry of their own (no global state, so tests and several apps in one
 * process do not collide). Label values come from route patterns and bounded sets; repository
 * names are capped to keep series bounded.
 */
export function createMetrics(options: MetricsOptions = {}): KbsMetrics {
  const registry = new Registry();
  if (options.processMetrics ?? true) collectDefaultMetrics({ register: registry, prefix: 'keyhold_kbs_' });
  const maxRepositoryLabels = options.maxRepositoryLabels ?? 1000;
  const requestDuration = new Histogram({
    name: 'keyhold_kbs_request_duration_seconds',
    help: 'KBS HTTP request duration by route pattern, method and status',
    labelNames: ['method', 'route', 'status'] as const,
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
    registers: [registry],
  });
  const attestations = new Counter({
    name: 'keyhold_kbs_attestations_total',
    help: 'Attestation outcomes by tee and EAR status (or error code)',
    labelNames: ['tee', 'status'] as const,
    registers: [registry],
  });
  const denials = new Counter({
    name: 'keyhold_kbs_policy_denials_total',
    help: 'Policy denials by policy kind and scope (repository, global, default)',
    labelNames: ['kind', 'scope'] as const,
    registers: [registry],
  });
  const releases = new Counter({
    name: 'keyhold_kbs_releases_total',
    help: 'Secrets released by repository',
    labelNames: ['repository'] as const,
    registers: [registry],
  });
  const rateLimited = new Counter({
    name: 'keyhold_kbs_rate_limit_hits_total',
    help: 'Requests refused by the rate limiter, by scope (auth, admin)',
    labelNames: ['scope'] as const,
    registers: [registry],
  });
  const eventsPublished = new Counter({ name: 'keyhold_kbs_events_published_total', help: 'Events stored in the event log', registers: [registry] });
  const eventsDropped = new Counter({
    name: 'keyhold_kbs_events_dropped_total',
    help: 'Events dropped before they were stored (buffer_full, backend, invalid); requests never wait for events',
    labelNames: ['reason'] as const,
    registers: [registry],
  });
  const webhookDeliveries = new Counter({
    name: 'keyhold_kbs_webhook_deliveries_total',
    help: 'Webhook delivery attempts by result (ok, failed: retried with backoff)',
    labelNames: ['result'] as const,
    registers: [registry],
  });
  const seenRepositories = new Set<string>();

  return {
    registry,
    contentType: registry.contentType,
    observeRequest({ method, route, status }, seconds) {
      requestDuration.observe({ method, route, status: String(status) }, seconds);
    },
    attestation({ tee, status }) {
      attestations.inc({ tee, status });
    },
    policyDenial({ kind, scope }) {
      denials.inc({ kind, scope });
    },
    release(repository) {
      if (!seenRepositories.has(repository) && seenRepositories.size < maxRepositoryLabels) seenRepositories.add(repository);
      releases.inc({ repository: seenRepositories.has(repository) ? repository : 'other' });
    },
    rateLimitHit(scope) {
      rateLimited.inc({ scope });
    },
    eventsPublished(count) {
      eventsPublished.inc(count);
    },
    eventsDropped(reason, count) {
      eventsDropped.inc({ reason }, count);
    },
    webhookDelivery(result) {
      webhookDeliveries.inc({ result });
    },
    render() {
      return registry.metrics();
    },
  };
}
