import { readFile } from 'node:fs/promises';
import type { Logger } from 'pino';
import { createPolicyEngine } from '@keyhold/policy';
import { DEFAULT_ADMIN_ROLES } from '../admin-auth/acl.js';
import type { AdminAuthorizer } from '../admin/admin-authorizer.js';
import { configuredAdminAuthorizer } from '../admin/configured-authorizer.js';
import { createAuditLog, type AuditLog } from '../audit/audit-log.js';
import { openFileAuditSink, type FileAuditSink } from '../audit/file-audit-sink.js';
import { KbsError } from '../errors.js';
import { createMetrics } from '../metrics/metrics.js';
import { openFilePolicyStore } from '../policy/file-policy-store.js';
import { createRateLimiter } from '../rate-limit/token-bucket.js';
import { celAttestationPolicy } from '../attestation/cel-attestation-policy.js';
import type { AttestationPolicy } from '../attestation/attestation-policy.js';
import { celResourcePolicy } from '../release/cel-resource-policy.js';
import type { ResourcePolicy } from '../release/resource-policy.js';
import type { OwnerConfig } from './owner-config.js';
import type { OwnerServices } from './owner-services.js';
import { dirname } from 'node:path';

export interface OpenedOwnerServices {
  readonly services: OwnerServices;
  readonly adminAuth: AdminAuthorizer;
  readonly attestationPolicy: AttestationPolicy;
  readonly resourcePolicy: ResourcePolicy;
  close(): Promise<void>;
}

/**
 * Wire the owner services from config: the file policy store and CEL engine, the audit trail's
 * file sink, the rate limiters, the metrics registry and the admin authorizer. `adminPublicKeyFile`
 * (`--admin-public-key`) becomes one identity `admin` with role `admin`.
 */
export async function openOwnerServices(config: OwnerConfig, opts: { adminPublicKeyFile: string | undefined; logger: Logger }): Promise<OpenedOwnerServices> {
  const { logger } = opts;
  const store = await openFilePolicyStore({ dataDir: dirname(config.policyFile) });
  const policies = createPolicyEngine({ store });

  let sink: FileAuditSink | undefined;
  let audit: AuditLog | undefined;
  if (config.auditFile !== undefined) {
    sink = await openFileAuditSink({ file: config.auditFile });
    audit = await createAuditLog({ sink });
    if (sink.truncatedTornBytes > 0) {
      logger.warn({ bytes: sink.truncatedTornBytes }, 'audit log had a torn last line; it was cut');
      await audit.record('admin', { action: 'audit.torn-tail-truncated', reason: `${sink.truncatedTornBytes} bytes`, verdict: 'ok' });
    }
    logger.info({ file: config.auditFile, head: audit.head() }, 'audit trail open');
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
      ...(config.admin.maxTokenLifetimeSec !== undefined ? { maxTokenLifetimeSec: config.admin.maxTokenLifetimeSec } : {}),
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
    ...(rl !== undefined
      ? { rateLimits: { auth: createRateLimiter({ ratePerSec: rl.authPerSec, burst: rl.authBurst }), admin: createRateLimiter({ ratePerSec: rl.adminPerSec, burst: rl.adminBurst }) } }
      : {}),
    ...(config.metricsEnabled ? { metrics: createMetrics() } : {}),
  };
  return {
    services,
    adminAuth,
    attestationPolicy: celAttestationPolicy({ engine: policies, policyId: config.attestationPolicyId }),
    resourcePolicy: celResourcePolicy(policies),
    async close() {
      await sink?.close();
    },
  };
}
