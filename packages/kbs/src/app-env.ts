import type { Logger } from 'pino';
import type { AdminAuthorizer, AdminPrincipal } from './admin/admin-authorizer.js';
import type { TeeAppraiser } from './attestation/tee-appraiser.js';
import type { ReferenceValueStore } from './reference-values/reference-value-store.js';
import type { ResourcePolicy } from './release/resource-policy.js';
import type { ResourceStore } from './release/resource-store.js';
import type { InMemorySessionStore } from './session/session-store.js';
import type { AttestationPolicy } from './attestation/attestation-policy.js';
import type { EarSigner } from './token/ear-signer.js';
import type { IdentityServices } from './attestation/tpm/identity-services.js';
import type { OwnerServices } from './owners/owner-services.js';

/** Counters the routes bump; the metrics adapter decides how they are exported. */
export interface KbsMetrics {
  count(event: 'auth' | 'attest_ok' | 'attest_fail' | 'release' | 'deny' | 'rate_limited', label: string): void;
}

/** Everything the KBS routes use, injected by `main` (or by tests). */
export interface KbsDeps {
  sessions: InMemorySessionStore;
  signer: EarSigner;
  appraisers: ReadonlyMap<string, TeeAppraiser>;
  attestationPolicy: AttestationPolicy;
  resourcePolicy: ResourcePolicy;
  resources: ResourceStore;
  references: ReferenceValueStore;
  adminAuth: AdminAuthorizer;
  logger: Logger;
  maxBodyBytes: number;
  build: string;
  metrics?: KbsMetrics;
  /** Hardware identity stores (EK allowlist, enrolments, EK CA store); admin routes 404 without them. */
  identity?: IdentityServices;
  /** Workload-owner services: CEL policy admin, audit trail, rate limits, Prometheus metrics (issue 5). */
  owners?: OwnerServices;
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
