/** Who made an admin call, once their token checked out. */
export interface AdminPrincipal {
  identity: string;
  role: string;
  /** Repositories the role is limited to; undefined when unlimited (listings are filtered by it). */
  repositories?: readonly string[] | undefined;
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
