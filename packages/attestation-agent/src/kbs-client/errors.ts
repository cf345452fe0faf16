import type { KbsErrorVariant } from '@keyhold/protocol';

/** Stable codes for failures talking to a KBS. */
export type KbsClientErrorCode =
  | 'KBS_UNREACHABLE'
  | 'KBS_PROTOCOL'
  | 'KBS_REFUSED'
  | 'ATTESTATION_FAILED'
  | 'POLICY_DENY'
  | 'RESOURCE_NOT_FOUND'
  | 'UNAUTHORIZED'
  | 'KBS_UNAVAILABLE'
  | 'JWE_DECRYPT_FAILED'
  | 'EVIDENCE_FAILED';

export class KbsClientError extends Error {
  override readonly name = 'KbsClientError';
  readonly code: KbsClientErrorCode;
  /** HTTP status of the KBS answer, when there was one. */
  readonly status: number | undefined;
  /** Trustee error variant from the KBS body, when it sent one. */
  readonly variant: KbsErrorVariant | undefined;
  /** The last segment of the error body's `type` as sent (e.g. `NodeBanned`), known variant or not. */
  readonly errorType: string | undefined;
  constructor(code: KbsClientErrorCode, message: string, options?: { cause?: unknown; status?: number; variant?: KbsErrorVariant; errorType?: string }) {
    super(message, options);
    this.code = code;
    this.status = options?.status;
    this.variant = options?.variant;
    this.errorType = options?.errorType;
  }
}
