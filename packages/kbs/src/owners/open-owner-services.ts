import { readFile } from 'node:fs/promises';
import type { Logger } from 'pino';
import { createPolicyEngine, type PolicyLimits } from '@keyhold/policy';
import { DEFAULT_ADMIN_ROLES } from '../admin-auth/acl.js';
import type { AdminAuthorizer } from '../admin/admin-authorizer.js';
import { configuredAdminAuthorizer } from '../admin/configured-authorizer.js';
import type { AuditLog } from '../audit/audit-log.js';
import { KbsError } from '../errors.js';
import { createMetrics } from '../metrics/metrics.js';
import { celAttestationPolicy } from '../attestation/cel-attestation-policy.js';
import type { AttestationPolicy } from '../attestation/attestation-policy.js';
import type { ResourcePolicy } from '../release/resource-policy.js';
import { celResourcePolicy } from '../release/cel-resource-policy.js';
import { openStateAuditLog } from '../state/index.js';
import type { KbsState } from '../state/ports.js';
import type { OwnerConfig } from './owner-config.js';
import type { OwnerServices } from './owner-services.js';

export interface OpenedOwnerServices {
  readonly services: OwnerServices;
  readonly adminAuth: AdminAuthorizer;
  readonly attestationPolicy: AttestationPolicy;
  readonly resourcePolicy: ResourcePolicy;
  close(): Promise<void>;
}

/**
 * Wire the owner services from config over the state backend: the CEL engine over the state's
 * policy store, the audit trail over the state's audit sink (a file in the data dir when embedded,
 * one chain in Redis shared by every replica otherwise), the rate-limit rules (buckets in the
 * state), the metrics registry (one per process: each replica serves its own) and the admin
 * authorizer. `adminPublicKeyFile` (`--admin-public-key`) becomes one identity `admin` with role `admin`.
 */
export async function openOwnerServices(
  config: OwnerConfig,
  opts: { state: KbsState; adminPublicKeyFile: string | undefined; logger: Logger; auditTruncatedTornBytes?: number; policyLimits?: Partial<PolicyLimits> },
): Promise<OpenedOwnerServices> {
  const { logger, state } = opts;
  const policies = createPolicyEngine({ store: state.policies, ...(opts.policyLimits !== undefined ? { limits: opts.policyLimits } : {}) });
  let audit: AuditLog | undefined;
  if (config.auditFile !== undefined) {
    audit = await openStateAuditLog(state);
    const torn = opts.auditTruncatedTornBytes ?? 0;
    if (torn > 0) {
      logger.warn({ bytes: torn }, 'audit log had a torn last line; it was cut');
      await audit.record('admin', { action: 'audit.torn-tail-truncated', reason: `${torn} bytes`, verdict: 'ok' });
    }
    logger.info({ backend: state.backend, head: audit.head() }, 'audit trail open');
  }
  const identities = await Promise.all(config.admin.identities.map(async (i) => ({ name: i.name, role: i.role, publicKeyPem: await readFile(i.publicKeyFile, 'utf8') })));
  if (opts.adminPublicKeyFile !== undefined) {
    const name = identities.some((i) => i.name === 'admin') ? 'admin-public-key' : 'admin';
    identities.push({ name, role: 'admin', publicKeyPem: await readFile(opts.adminPublicKeyFile, 'utf8') });
  }
  let adminAuth: AdminAuthorizer;
  if (identities.length === 0 && !config.admin.insecureAllowAll) {
    logger.warn('no admin identities and no --admin-public-key: admin endpoints refuse every call');
    adminAuth = {
      async authorize() {
        throw new KbsError('ADMIN_UNAUTHORIZED', 'no admin key is configured on this KBS');
      },
    };
  } else {
    const configured = configuredAdminAuthorizer({
      identities,
      roles: { ...DEFAULT_ADMIN_ROLES, ...(config.admin.roles ?? {}) },
      ...(config.admin.issuer !== undefined ? { issuer: config.admin.issuer } : {}),
      ...(config.admin.audience !== undefined ? { audience: config.admin.audience } : {}),
      maxTokenLifetimeSec: config.admin.maxTokenLifetimeSec,
      clockToleranceSec: config.admin.clockSkewSec,
      insecureAllowAll: config.admin.insecureAllowAll,
    });
    if (configured.warning !== undefined) logger.warn(configured.warning);
    adminAuth = configured;
  }

  const rl = config.rateLimit;
  const services: OwnerServices = {
    policies,
    attestationPolicyId: config.attestationPolicyId,
    ...(audit !== undefined ? { audit } : {}),
    ...(rl !== undefined ? { rateLimits: { auth: { ratePerSec: rl.authPerSec, burst: rl.authBurst }, admin: { ratePerSec: rl.adminPerSec, burst: rl.adminBurst } } } : {}),
    ...(config.metricsEnabled ? { metrics: createMetrics() } : {}),
  };
  return {
    services,
    adminAuth,
    attestationPolicy: celAttestationPolicy({ engine: policies, store: state.policies, policyId: config.attestationPolicyId }),
    resourcePolicy: celResourcePolicy(policies),
    /** The state (and with it the audit sink and policy store) belongs to the caller. */
    async close() {},
  };
}
