import type { ReferenceValueStore } from '../reference-values/reference-value-store.js';
import type { Session } from '../session/session-store.js';
import type { TrustworthinessVector } from '../token/ear-claims.js';

export interface TeeAppraisalInput {
  /** The attester's primary evidence, as sent (unverified JSON). */
  evidence: unknown;
  /** Digest of the runtime data the evidence must be bound to (full length; appraisers fit it). */
  expectedReportData: Uint8Array;
  /** Hash of the init-data the attester claims, when it sent one. */
  initDataDigest?: Uint8Array;
  session: Session;
  references: ReferenceValueStore;
  now: Date;
  /** The runtime data's `tee-pubkey` (what `expectedReportData` binds; secrets are wrapped to it). */
  teePubkey?: unknown;
}

export interface TeeAppraisal {
  /** Claims about the TEE, placed under `annotated-evidence.<tee>` in the token. */
  teeClaims: Record<string, unknown>;
  /** Hex of the report data the evidence carried (after verification). */
  reportDataHex: string;
  /** Hex of the init-data measurement the evidence carried, when it has one. */
  initDataHex?: string;
  /** The AR4SI claims this appraisal can make. */
  vector: Partial<TrustworthinessVector>;
  /** Extra annotated-evidence members (node identity, SPIFFE id, …). */
  extra?: Record<string, unknown>;
}

/**
 * Appraises one TEE type's evidence. Implementations throw KbsError('ATTESTATION_FAILED', reason)
 * when the evidence does not verify; they never return partially verified claims.
 */
export interface TeeAppraiser {
  readonly tee: string;
  /**
   * Extra members for the `/auth` challenge's `extra-params` (e.g. a credential-activation blob),
   * computed from the client's request parameters kept in the session.
   */
  challenge?(session: Session, references: ReferenceValueStore): Promise<Record<string, unknown>>;
  appraise(input: TeeAppraisalInput): Promise<TeeAppraisal>;
}
