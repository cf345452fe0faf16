/** Who made an admin call, once their token checked out. */
export interface AdminPrincipal {
  identity: string;
  role: string;
  /** Repositories the role is limited to; undefined when unlimited (listings are filtered by it). */
  repositories?: readonly string[] | undefined;
  /** When the caller's token expires (ms since the epoch); long-lived answers (event streams) end then. */
  expiresAtMs?: number | undefined;
  /** Whether the caller's role may call `method path` (the same ACL check the middleware applies); advisory for listings. */
  allows?: ((method: string, path: string) => boolean) | undefined;
}

export interface AdminRequest {
  authorizationHeader: string | undefined;
  method: string;
  path: string;
}

/**
 * Decides whether an admin call may proceed. Throws KbsError ADMIN_UNAUTHORIZED (no/invalid/expired
 * token) or ADMIN_FORBIDDEN (valid token, endpoint not allowed for its role).
 */
export interface AdminAuthorizer {
  authorize(req: AdminRequest): Promise<AdminPrincipal>;
}
