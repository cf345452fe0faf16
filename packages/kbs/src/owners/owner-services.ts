import type { PolicyEngine } from '@keyhold/policy';
import type { AuditLog } from '../audit/audit-log.js';
import type { KbsMetrics as PromMetrics } from '../metrics/metrics.js';
import type { RateLimitRule } from '../state/ports.js';

/**
 * The workload-owner services (issue 5): scoped CEL policies, the audit trail, per-client rate
 * limits and Prometheus metrics. Each part is optional so in-process tests and minimal setups can
 * leave it out: without `policies` the policy admin routes answer 404, without `audit` nothing is
 * recorded, without a limiter nothing is limited, without `metrics` `/metrics` answers 404.
 */
export interface OwnerServices {
  readonly policies?: PolicyEngine;
  /** The attestation policy id tokens are appraised with (default `default`). */
  readonly attestationPolicyId?: string;
  readonly audit?: AuditLog;
  /** Token-bucket rules per scope; the buckets live in the state backend (shared by replicas). */
  readonly rateLimits?: { readonly auth?: RateLimitRule; readonly admin?: RateLimitRule };
  /** Served unauthenticated at `/metrics` (label values are route patterns and repository names, never secrets). */
  readonly metrics?: PromMetrics;
}
