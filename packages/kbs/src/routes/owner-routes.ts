import type { Hono, MiddlewareHandler } from 'hono';
import type { KbsEnv } from '../app-env.js';
import { handleGetAudit } from './admin-audit.js';
import { handleDeleteReferenceValue, handleGetReferenceValue, handleListResources, handleResourceVersions } from './admin-catalog.js';
import {
  handleDeleteAttestationPolicy,
  handleDeleteResourcePolicy,
  handleGetAttestationPolicy,
  handleGetResourcePolicy,
  handleListAttestationPolicies,
  handleListPolicies,
  handleSetAttestationPolicy,
  handleSetResourcePolicy,
} from './admin-policy.js';
import { handleMetrics } from './metrics.js';
import { handleAdminHealth } from './admin-health.js';
import { handlePolicyTest, handleRepositoryPolicyTest } from './policy-test.js';
import { handlePolicyVersions, handleRepositoryPolicyVersions } from './policy-versions.js';

/**
 * The workload-owner endpoints (issue 5): policies, resource and reference-value catalogues, the
 * audit trail (all behind `admin`, the token + role ACL check) and `/metrics`.
 */
export function registerOwnerRoutes(app: Hono<KbsEnv>, admin: MiddlewareHandler<KbsEnv>): void {
  app.post('/kbs/v0/attestation-policy', admin, handleSetAttestationPolicy);
  app.get('/kbs/v0/attestation-policy', admin, handleListAttestationPolicies);
  app.get('/kbs/v0/attestation-policy/:id', admin, handleGetAttestationPolicy);
  app.delete('/kbs/v0/attestation-policy/:id', admin, handleDeleteAttestationPolicy);
  app.post('/kbs/v0/resource-policy', admin, handleSetResourcePolicy);
  app.get('/kbs/v0/resource-policy', admin, handleGetResourcePolicy);
  app.delete('/kbs/v0/resource-policy', admin, handleDeleteResourcePolicy);
  app.post('/kbs/v0/resource-policy/:repository', admin, handleSetResourcePolicy);
  app.get('/kbs/v0/resource-policy/:repository', admin, handleGetResourcePolicy);
  app.delete('/kbs/v0/resource-policy/:repository', admin, handleDeleteResourcePolicy);
  app.get('/kbs/v0/policies', admin, handleListPolicies);
  // The owner console's (issue 16): policy history, server-side policy tests, a health summary.
  app.get('/kbs/v0/policy-versions', admin, handlePolicyVersions);
  app.get('/kbs/v0/resource-policy/:repository/versions', admin, handleRepositoryPolicyVersions);
  app.post('/kbs/v0/policy-test', admin, handlePolicyTest);
  app.post('/kbs/v0/resource-policy/:repository/test', admin, handleRepositoryPolicyTest);
  app.get('/kbs/v0/admin/health', admin, handleAdminHealth);
  app.get('/kbs/v0/resources', admin, handleListResources);
  app.get('/kbs/v0/resources/:repository', admin, handleListResources);
  app.get('/kbs/v0/resources/:repository/:type/:tag', admin, handleResourceVersions);
  app.get('/kbs/v0/reference-value/:name', admin, handleGetReferenceValue);
  app.delete('/kbs/v0/reference-value/:name', admin, handleDeleteReferenceValue);
  app.get('/kbs/v0/audit', admin, handleGetAudit);
  app.get('/metrics', handleMetrics);
}
