/**
 * Stable codes for admin authorization failures. The KBS maps MISSING/INVALID/EXPIRED to 401 and
 * FORBIDDEN to 403 (Trustee error type `AdminAuthAccess`).
 */
export type AdminAuthErrorCode = 'ADMIN_TOKEN_MISSING' | 'ADMIN_TOKEN_INVALID' | 'ADMIN_TOKEN_EXPIRED' | 'ADMIN_FORBIDDEN';

export class AdminAuthError extends Error {
  override readonly name = 'AdminAuthError';
  readonly code: AdminAuthErrorCode;
  constructor(code: AdminAuthErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
  }
}
