import type { TpmAppraisal } from '@keyhold/verifier';
import type { ReferenceSnapshot, SessionRecord } from '../../state/ports.js';
import type { TrustworthinessVector } from '../../token/ear-claims.js';
import type { ChallengeInput } from '../tee-appraiser.js';

/** What an extension sees: the quote-verified claims and the raw evidence's extra fields. */
export interface TpmExtensionInput {
  /** The verified quote and claims (PCR values are quote-verified). */
  readonly verified: TpmAppraisal;
  /** The primary evidence object as sent (unverified; extensions verify what they read). */
  readonly evidence: Readonly<Record<string, unknown>>;
  readonly session: SessionRecord;
  /** The state this extension returned from `challenge` at `/auth` (undefined when it returned none). */
  readonly challengeState: unknown;
  readonly references: ReferenceSnapshot;
  readonly now: Date;
  /**
   * True when the attester sent init-data: PCR8 then holds the init-data binding (checked by the
   * verifier), which no firmware event log contains.
   */
  readonly initDataBound: boolean;
  /** The runtime data's `tee-pubkey` (bound by the quote's report data; unverified shape beyond the protocol schema). */
  readonly teePubkey?: unknown;
}

export interface TpmExtensionChallenge {
  /** Members for the challenge's extra-params. */
  readonly extraParams?: Record<string, unknown>;
  /** JSON state kept in the session under this extension's name (bounded; never raw client input). */
  readonly state?: unknown;
}

export interface TpmExtensionResult {
  /** AR4SI claims this extension makes (merged; the worst value for a key wins). */
  readonly vector?: Partial<TrustworthinessVector>;
  /** Claims added under `annotated-evidence.tpm`. */
  readonly claims?: Record<string, unknown>;
  /** Members added beside Trustee's in `annotated-evidence` (node id, SPIFFE id, …). */
  readonly extra?: Record<string, unknown>;
  /**
   * Set by an identity extension when it established that the AK belongs to a trusted TPM
   * (EK certificate / allowlist + credential activation). Without it, or a listed AK, the
   * attestation fails closed.
   */
  readonly akTrusted?: 'ek-bound';
}

/**
 * An appraisal step beyond Trustee's quote checks (hardware identity, measured boot, IMA). Runs only
 * after the quote verified. Throws KbsError('ATTESTATION_FAILED', reason) to refuse the evidence
 * outright; returns contraindicating vector values to let the attestation policy decide.
 */
export interface TpmExtension {
  /** Unique among a TpmAppraiser's extensions: the key of its challenge state in the session. */
  readonly name: string;
  /**
   * True for extensions that can establish AK trust (hardware identity). They run first; the
   * others run only once the AK is trusted, so an untrusted AK never makes the KBS parse logs.
   */
  readonly establishesIdentity?: boolean;
  /** Runs at `/auth`: members for the challenge's extra-params and state for `/attest`. */
  challenge?(input: ChallengeInput): Promise<TpmExtensionChallenge>;
  appraise(input: TpmExtensionInput): Promise<TpmExtensionResult>;
}
