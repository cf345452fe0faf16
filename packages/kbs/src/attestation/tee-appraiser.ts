import type { ReferenceSnapshot, SessionRecord } from '../state/ports.js';
import type { TrustworthinessVector } from '../token/ear-claims.js';

/** What an appraiser sees at `/auth`, before the session exists. */
export interface ChallengeInput {
  readonly tee: string;
  /**
   * The client's Request `extra-params`, as sent (unverified; bounded only by the body limit).
   * Appraisers parse what they need with a bounded schema and keep only the parsed result.
   */
  readonly extraParams: Readonly<Record<string, unknown>>;
  /** The owner's reference values, read at most once per request (lazily: most challenges need none). */
  readonly references: () => Promise<ReferenceSnapshot>;
  readonly now: Date;
}

export interface ChallengeResult {
  /** Members added to the challenge's `extra-params` (e.g. a credential-activation blob). */
  readonly extraParams?: Record<string, unknown>;
  /**
   * JSON state kept in the session for `/attest` (parsed, size-bounded identity fields, an expected
   * activation answer...), keyed by extension name. Never the raw extra-params.
   */
  readonly state?: Record<string, unknown>;
}

export interface TeeAppraisalInput {
  /** The attester's primary evidence, as sent (unverified JSON). */
  evidence: unknown;
  /** Digest of the runtime data the evidence must be bound to (full length; appraisers fit it). */
  expectedReportData: Uint8Array;
  /** Hash of the init-data the attester claims, when it sent one. */
  initDataDigest?: Uint8Array;
  /** The session as it was when this request consumed its nonce (challenge state included). */
  session: SessionRecord;
  /** The owner's reference values, one snapshot for the whole request. */
  references: ReferenceSnapshot;
  now: Date;
  /** The runtime data's `tee-pubkey` (what `expectedReportData` binds; secrets are wrapped to it). */
  teePubkey?: unknown;
  /**
   * Called once the node's identity is proven in this appraisal (its quote verified and was signed
   * by an AK the owner trusts), before any later check that may still refuse the evidence; so a
   * refusal after this point is attributable to the node (continuous attestation, issue 13).
   */
  identified?: (node: { readonly nodeId: string }) => void;
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
   * Runs at `/auth` before the session is stored, so the stored session is complete: extra members
   * for the challenge and the state `/attest` will need.
   */
  challenge?(input: ChallengeInput): Promise<ChallengeResult>;
  appraise(input: TeeAppraisalInput): Promise<TeeAppraisal>;
}
