import { readFile } from 'node:fs/promises';
import { Cluster, Redis, type RedisOptions } from 'ioredis';
import type { Logger } from 'pino';
import { createPolicyEngine, type PolicyStore } from '@keyhold/policy';
import { DEFAULT_ADMIN_ROLES } from '../admin-auth/acl.js';
import type { AdminAuthorizer } from '../admin/admin-authorizer.js';
import { configuredAdminAuthorizer } from '../admin/configured-authorizer.js';
import { createAuditLog, type AuditLog } from '../audit/audit-log.js';
import { openFileAuditSink, type FileAuditSink } from '../audit/file-audit-sink.js';
import { RedisAuditSink, createRedisAuditLog } from '../audit/redis-audit-sink.js';
import { KbsError } from '../errors.js';
import { createMetrics } from '../metrics/metrics.js';
import { openFilePolicyStore } from '../policy/file-policy-store.js';
import { RedisPolicyStore } from '../policy/redis-policy-store.js';
import { createRateLimiter } from '../rate-limit/token-bucket.js';
import { celAttestationPolicy } from '../attestation/cel-attestation-policy.js';
import type { AttestationPolicy } from '../attestation/attestation-policy.js';
import { celResourcePolicy } from '../release/cel-resource-policy.js';
import type { ResourcePolicy } from '../release/resource-policy.js';
import type { OwnerConfig, OwnerRedisConfig } from './owner-config.js';
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
 * Wire the owner services from config: the policy store and CEL engine, the audit trail's sink
 * (files in the data dir, or the `[storage]` Redis when configured so), the rate limiters, the
 * metrics registry and the admin authorizer. `adminPublicKeyFile` (`--admin-public-key`) becomes
 * one identity `admin` with role `admin`.
 */
export async function openOwnerServices(config: OwnerConfig, opts: { adminPublicKeyFile: string | undefined; logger: Logger }): Promise<OpenedOwnerServices> {
  const { logger } = opts;
  const redis = config.redis === undefined ? undefined : await openOwnerRedis(config.redis);
  const redisOptions = {
    ...(config.redis?.keyPrefix !== undefined ? { keyPrefix: config.redis.keyPrefix } : {}),
    ...(config.redis?.operationTimeoutMs !== undefined ? { operationTimeoutMs: config.redis.operationTimeoutMs } : {}),
  };
  let store: PolicyStore;
  let sink: FileAuditSink | undefined;
  let audit: AuditLog | undefined;
  try {
    store = redis !== undefined && config.redis?.policies === true ? new RedisPolicyStore(redis, redisOptions) : await openFilePolicyStore({ dataDir: dirname(config.policyFile) });
    if (redis !== undefined && config.redis?.audit === true && config.auditFile !== undefined) {
      audit = await createRedisAuditLog({ sink: new RedisAuditSink(redis, redisOptions) });
      logger.info({ backend: 'redis', head: audit.head() }, 'audit trail open');
    }
  } catch (err) {
    redis?.disconnect();
    throw err;
  }
  const policies = createPolicyEngine({ store });

  if (audit === undefined && config.auditFile !== undefined) {
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
      if (redis !== undefined) {
        try {
          await redis.quit();
        } catch {
          redis.disconnect();
        }
      }
    },
  };
}

/** One connection (standalone or cluster) for the audit trail and policies, with the secret store's timeouts. */
async function openOwnerRedis(r: OwnerRedisConfig): Promise<Redis | Cluster> {
  const commandTimeout = r.commandTimeoutMs ?? 1000;
  const password = r.passwordFile === undefined ? undefined : (await readFile(r.passwordFile, 'utf8')).trim();
  const tls = r.tlsCaFile === undefined ? undefined : { ca: await readFile(r.tlsCaFile, 'utf8') };
  const nodeOptions: RedisOptions = {
    commandTimeout,
    connectTimeout: commandTimeout,
    maxRetriesPerRequest: 1,
    ...(r.username === undefined ? {} : { username: r.username }),
    ...(password === undefined ? {} : { password }),
    ...(tls === undefined ? {} : { tls }),
  };
  const client =
    r.url !== undefined
      ? new Redis(r.url, { ...nodeOptions, retryStrategy: (times) => Math.min(times * 100, 1000) })
      : new Cluster(r.clusterNodes?.map((n) => ({ host: n.host, port: n.port })) ?? [], {
          redisOptions: nodeOptions,
          clusterRetryStrategy: (times) => Math.min(times * 100, 1000),
          retryDelayOnClusterDown: 100,
          retryDelayOnFailover: 100,
          slotsRefreshTimeout: commandTimeout,
        });
  // Outages surface as typed errors from each operation; the client keeps reconnecting.
  client.on('error', () => undefined);
  return client;
}
