import type { KbsErrorVariant } from '@keyhold/protocol';

/** Stable codes of every failure the KBS reports. Each maps to one HTTP status and Trustee type. */
export type KbsErrorCode =
  | 'BAD_REQUEST'
  | 'UNSUPPORTED_MEDIA_TYPE'
  | 'PROTOCOL_VERSION'
  | 'UNSUPPORTED_TEE'
  | 'INVALID_RESOURCE_PATH'
  | 'SESSION_MISSING'
  | 'SESSION_EXPIRED'
  | 'SESSION_NOT_ATTESTED'
  | 'SESSION_LIMIT'
  | 'NONCE_MISMATCH'
  | 'NONCE_CONSUMED'
  | 'ATTESTATION_FAILED'
  | 'TOKEN_MISSING'
  | 'TOKEN_INVALID'
  | 'POLICY_DENY'
  | 'NODE_REVOKED'
  | 'NODE_BANNED'
  | 'RESOURCE_NOT_FOUND'
  | 'POLICY_NOT_FOUND'
  | 'JWE_FAILED'
  | 'PAYLOAD_TOO_LARGE'
  | 'RATE_LIMITED'
  | 'ADMIN_UNAUTHORIZED'
  | 'ADMIN_FORBIDDEN'
  | 'STORAGE_UNAVAILABLE'
  | 'INTERNAL';

export class KbsError extends Error {
  override readonly name = 'KbsError';
  readonly code: KbsErrorCode;
  /** For 429 answers: seconds the client should wait (the `retry-after` header), default 1. */
  readonly retryAfterSec: number | undefined;
  constructor(code: KbsErrorCode, message: string, options?: { cause?: unknown; retryAfterSec?: number }) {
    super(message, options);
    this.code = code;
    this.retryAfterSec = options?.retryAfterSec;
  }
}

export interface ErrorMapping {
  readonly status: 400 | 401 | 403 | 404 | 413 | 415 | 429 | 500 | 503;
  readonly variant: KbsErrorVariant;
}

/**
 * The one table from error code to HTTP status and Trustee error type. 401 only when a session or
 * token is missing, expired or invalid (Trustee clients then re-attest); 403 for a denial.
 */
export const ERROR_TABLE: { readonly [C in KbsErrorCode]: ErrorMapping } = {
  BAD_REQUEST: { status: 400, variant: 'InvalidRequest' },
  UNSUPPORTED_MEDIA_TYPE: { status: 415, variant: 'UnsupportedMediaType' },
  PROTOCOL_VERSION: { status: 400, variant: 'ProtocolVersion' },
  UNSUPPORTED_TEE: { status: 400, variant: 'UnsupportedTee' },
  INVALID_RESOURCE_PATH: { status: 404, variant: 'InvalidRequestPath' },
  SESSION_MISSING: { status: 401, variant: 'CookieNotFound' },
  SESSION_EXPIRED: { status: 401, variant: 'ExpiredCookie' },
  SESSION_NOT_ATTESTED: { status: 401, variant: 'UnAuthenticatedCookie' },
  SESSION_LIMIT: { status: 429, variant: 'TooManySessions' },
  NONCE_MISMATCH: { status: 401, variant: 'NonceMismatch' },
  NONCE_CONSUMED: { status: 401, variant: 'NonceMismatch' },
  ATTESTATION_FAILED: { status: 401, variant: 'AttestationFailed' },
  TOKEN_MISSING: { status: 401, variant: 'TokenNotFound' },
  TOKEN_INVALID: { status: 401, variant: 'TokenVerifierError' },
  POLICY_DENY: { status: 403, variant: 'PolicyDeny' },
  NODE_REVOKED: { status: 403, variant: 'NodeRevoked' },
  NODE_BANNED: { status: 403, variant: 'NodeBanned' },
  RESOURCE_NOT_FOUND: { status: 404, variant: 'ResourceNotFound' },
  POLICY_NOT_FOUND: { status: 404, variant: 'ResourceNotFound' },
  JWE_FAILED: { status: 400, variant: 'JweError' },
  PAYLOAD_TOO_LARGE: { status: 413, variant: 'PayloadTooLarge' },
  RATE_LIMITED: { status: 429, variant: 'RateLimited' },
  ADMIN_UNAUTHORIZED: { status: 401, variant: 'AdminAuthAccess' },
  ADMIN_FORBIDDEN: { status: 403, variant: 'AdminAuthAccess' },
  STORAGE_UNAVAILABLE: { status: 503, variant: 'StorageUnavailable' },
  INTERNAL: { status: 500, variant: 'InternalError' },
};
