import type { Logger } from 'pino';
import type { AdminAuthorizer, AdminPrincipal } from './admin/admin-authorizer.js';
import type { TeeAppraiser } from './attestation/tee-appraiser.js';
import type { ResourcePolicy } from './release/resource-policy.js';
import type { ResourceStore } from './release/resource-store.js';
import type { AttestationPolicy } from './attestation/attestation-policy.js';
import type { EarSigner } from './token/ear-signer.js';
import type { KbsState } from './state/ports.js';
import type { OwnerServices } from './owners/owner-services.js';
import type { ContinuousDeps } from './continuous/continuous-deps.js';
import type { StorageEndpoints } from './storage/storage-failure.js';

/** Counters the routes bump; the metrics adapter decides how they are exported. */
export interface KbsMetrics {
  count(event: 'auth' | 'attest_ok' | 'attest_fail' | 'release' | 'deny' | 'rate_limited', label: string): void;
}

/** Everything the KBS routes use, injected by `main` (or by tests). */
export interface KbsDeps {
  /**
   * Everything the KBS remembers between requests (sessions, nonces, node records, reference
   * values, EK allowlist and CA store, IMA checkpoints, rate limits, audit trail, policies): one
   * process's embedded state, or the Redis shared by every replica.
   */
  state: KbsState;
  /** Session (cookie) lifetime. */
  sessionTtlMs: number;
  signer: EarSigner;
  appraisers: ReadonlyMap<string, TeeAppraiser>;
  attestationPolicy: AttestationPolicy;
  resourcePolicy: ResourcePolicy;
  resources: ResourceStore;
  adminAuth: AdminAuthorizer;
  logger: Logger;
  maxBodyBytes: number;
  /** Cap on a `POST /kbs/v0/auth` body (its extra-params); default 64 KiB, never above maxBodyBytes. */
  maxAuthBodyBytes?: number;
  /**
   * `[admin] client_ca`: admin calls must come over a TLS connection whose client certificate
   * verified against that CA (mutual TLS), in addition to the admin token.
   */
  requireAdminClientCertificate?: boolean;
  /** Where the state backend and the secret store live (credential-free), for storage-failure logs. */
  storageEndpoints?: StorageEndpoints;
  build: string;
  metrics?: KbsMetrics;
  /** Workload-owner services: CEL policy admin, audit trail, rate limits, Prometheus metrics (issue 5). */
  owners?: OwnerServices;
  /**
   * Continuous attestation (issue 13): `[continuous]` settings, events, the node CA. Without it,
   * node records are still kept, but nothing is banned, no event is emitted and no node
   * certificate is issued (in-process apps and tests that do not need them).
   */
  continuous?: ContinuousDeps;
  now?: () => number;
}

export interface KbsEnv {
  Variables: {
    deps: KbsDeps;
    requestId: string;
    log: Logger;
    admin?: AdminPrincipal;
  };
}
