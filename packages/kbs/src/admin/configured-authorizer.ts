import { AdminAuthError } from '../admin-auth/errors.js';
import { createAdminAuthorizer, type AdminAuthConfig } from '../admin-auth/authorizer.js';
import { KbsError } from '../errors.js';
import type { AdminAuthorizer } from './admin-authorizer.js';

/**
 * The KBS's admin port over the role-based authorizer (identities with roles, endpoint regex ACLs,
 * repository limits; see admin-auth/authorizer.ts for its guarantees). Its errors become KBS codes:
 * a missing, invalid or expired token is ADMIN_UNAUTHORIZED (401), a valid token whose role may not
 * make the call is ADMIN_FORBIDDEN (403). `warning` is set for the insecure allow-all mode.
 */
export function configuredAdminAuthorizer(config: AdminAuthConfig): AdminAuthorizer & { readonly warning: string | undefined } {
  const inner = createAdminAuthorizer(config);
  return {
    warning: inner.warning,
    async authorize(req) {
      try {
        const p = await inner.authorize(req);
        return { identity: p.identity, role: p.role, repositories: p.repositories, expiresAtMs: p.expiresAtMs, allows: p.allows };
      } catch (err) {
        if (!(err instanceof AdminAuthError)) throw err;
        throw new KbsError(err.code === 'ADMIN_FORBIDDEN' ? 'ADMIN_FORBIDDEN' : 'ADMIN_UNAUTHORIZED', err.message, { cause: err });
      }
    },
  };
}
