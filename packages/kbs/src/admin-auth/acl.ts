import { AdminAuthError } from './errors.js';

/** One ACL entry: HTTP methods (or `*`) and a path regex, anchored to the whole path. */
export interface AdminAclRule {
  readonly methods: readonly string[];
  readonly path: string;
}

/** A role: what it may call, and optionally which repositories it may touch. */
export interface AdminRoleConfig {
  readonly rules: readonly AdminAclRule[];
  /**
   * When set, the role may only call paths that name one of these repositories
   * (`/kbs/v0/resource/<repo>/...`, `/kbs/v0/resource-policy/<repo>`, `/kbs/v0/resources/<repo>...`);
   * paths naming no repository are refused.
   */
  readonly repositories?: readonly string[];
}

/**
 * Roles available without configuration. `admin` may call every admin endpoint; `auditor` may read
 * the audit log; `reader` may call any GET. Repository-limited owner roles are configured, e.g.
 * `{"owner-a": {"rules": [{"methods": ["*"], "path": "/kbs/v0/(resource|resource-policy)/.*"}], "repositories": ["a"]}}`.
 */
export const DEFAULT_ADMIN_ROLES: Readonly<Record<string, AdminRoleConfig>> = {
  admin: { rules: [{ methods: ['*'], path: '/kbs/v0/.*' }] },
  auditor: { rules: [{ methods: ['GET'], path: '/kbs/v0/audit(/.*)?' }] },
  reader: { rules: [{ methods: ['GET'], path: '/kbs/v0/.*' }] },
};

const METHOD = /^(\*|[A-Z]+)$/;
const MAX_PATH_CHARS = 2048;
// SECURITY: only plain path characters are authorized, so an ACL regex and the router can never
// disagree about a percent-encoded, dot-dot or backslash path (path confusion, CWE-22/CWE-863).
// `:` is plain (node ids `ak:<hex>`): the router matches it literally and never decodes to it.
const PLAIN_PATH = /^(\/[A-Za-z0-9_.:-]+)+\/?$|^\/$/;
const REPOSITORY_IN_PATH = /^\/kbs\/v0\/(?:resource|resource-policy|resources)\/([A-Za-z0-9_-][A-Za-z0-9_.-]*)(?:\/|$)/;

export interface CompiledRole {
  readonly name: string;
  readonly rules: readonly { readonly methods: ReadonlySet<string>; readonly path: RegExp }[];
  readonly repositories: ReadonlySet<string> | undefined;
}

/** Validate and compile roles; programmer/config mistakes throw TypeError at start. */
export function compileRoles(roles: Readonly<Record<string, AdminRoleConfig>>): ReadonlyMap<string, CompiledRole> {
  const out = new Map<string, CompiledRole>();
  for (const [name, role] of Object.entries(roles)) {
    if (!Array.isArray(role.rules as unknown)) throw new TypeError(`admin role ${name}: rules must be an array`);
    const rules = role.rules.map((r, i) => {
      const methods = new Set<string>(r.methods.map((m: string) => m.toUpperCase()));
      if (methods.size === 0 || [...methods].some((m) => !METHOD.test(m))) throw new TypeError(`admin role ${name} rule ${i}: bad methods`);
      let path: RegExp;
      try {
        // SECURITY: anchored, so `/kbs/v0/audit` cannot also grant `/kbs/v0/audit-x/../resource` or
        // any path merely containing it (partial regex match).
        path = new RegExp(`^(?:${r.path})$`);
      } catch (cause) {
        throw new TypeError(`admin role ${name} rule ${i}: path is not a valid regular expression`, { cause });
      }
      return { methods, path };
    });
    if (role.repositories !== undefined && (!Array.isArray(role.repositories as unknown) || role.repositories.length === 0)) {
      throw new TypeError(`admin role ${name}: repositories must be a non-empty list when given`);
    }
    out.set(name, { name, rules, repositories: role.repositories === undefined ? undefined : new Set(role.repositories) });
  }
  return out;
}

/** The repository a path names, if any (see AdminRoleConfig.repositories). */
export function repositoryOfPath(path: string): string | undefined {
  return REPOSITORY_IN_PATH.exec(path)?.[1];
}

/** Throws ADMIN_FORBIDDEN unless `role` may call `method path`. */
export function checkAcl(role: CompiledRole, method: string, path: string): void {
  if (path.length > MAX_PATH_CHARS || !PLAIN_PATH.test(path) || path.split('/').some((s) => s === '.' || s === '..')) throw new AdminAuthError('ADMIN_FORBIDDEN', 'admin path contains characters that are never authorized');
  const m = method.toUpperCase();
  // SECURITY: default deny: a call is allowed only if one of the role's rules names it (CWE-862).
  const allowed = role.rules.some((r) => (r.methods.has('*') || r.methods.has(m)) && r.path.test(path));
  if (!allowed) throw new AdminAuthError('ADMIN_FORBIDDEN', `role ${role.name} may not ${m} this endpoint`);
  if (role.repositories !== undefined) {
    const repo = repositoryOfPath(path);
    // SECURITY: a repository-limited role (one owner) cannot reach another owner's repository or a
    // global endpoint (cross-tenant access, Trustee issue #1112).
    if (repo === undefined || !role.repositories.has(repo)) throw new AdminAuthError('ADMIN_FORBIDDEN', `role ${role.name} is limited to other repositories`);
  }
}
