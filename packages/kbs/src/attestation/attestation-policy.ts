import type { ReferenceSnapshot } from '../state/ports.js';
import { AR4SI, emptyVector, statusOfVector, type EarStatus, type TrustworthinessVector } from '../token/ear-claims.js';
import type { TeeAppraisal } from './tee-appraiser.js';

export interface AttestationVerdict {
  status: EarStatus;
  vector: TrustworthinessVector;
  policyId: string;
  /** The stored policy's version (0: built in); the token names `<policyId>@<version>`. */
  version?: number;
  /** The first reason the verdict is not affirming, for the audit trail and the denial detail. */
  reason?: string;
}

/** Turns a verified appraisal and the owner's reference values into an EAR status and vector. */
export interface AttestationPolicy {
  evaluate(input: { tee: string; appraisal: TeeAppraisal; references: ReferenceSnapshot }): Promise<AttestationVerdict>;
}

/**
 * The built-in attestation policy: start from what the appraiser could claim (identity, hardware,
 * boot and runtime state), then compare each PCR for which the owner stored a reference value
 * `<tee>_pcrNN` (e.g. `tpm_pcr07`): a mismatch marks the configuration unsafe (contraindicated).
 */
export const defaultAttestationPolicy: AttestationPolicy = {
  async evaluate({ tee, appraisal, references }) {
    const vector = { ...emptyVector(), ...appraisal.vector };
    const { compared, mismatched } = comparePinnedPcrs(tee, appraisal.teeClaims, references);
    // SECURITY: a PCR the owner pinned must hold one of the pinned values (modified boot chain).
    if (mismatched.length > 0) vector.configuration = AR4SI.UNSAFE;
    const reason = pcrMismatchReason(tee, mismatched);
    if (compared > 0 && vector.configuration === AR4SI.NO_CLAIM) vector.configuration = AR4SI.APPROVED;
    const status = statusOfVector(vector);
    return { status, vector, policyId: 'default', ...(reason !== undefined ? { reason } : {}) };
  },
};

/** The PCRs (`pcrNN`) the owner pinned with `<tee>_pcrNN`, and those whose quoted value is not among the pinned ones. */
export function comparePinnedPcrs(tee: string, teeClaims: Readonly<Record<string, unknown>>, references: ReferenceSnapshot): { compared: number; mismatched: string[] } {
  let compared = 0;
  const mismatched: string[] = [];
  for (let i = 0; i < 24; i++) {
    const name = `pcr${String(i).padStart(2, '0')}`;
    const allowed = references.get(`${tee}_${name}`);
    if (allowed === undefined) continue;
    compared++;
    const actual = teeClaims[name];
    if (typeof actual !== 'string' || !allowed.some((v) => v.toLowerCase() === actual.toLowerCase())) mismatched.push(name);
  }
  return { compared, mismatched };
}

/**
 * Why pinned PCRs failed, by NAME only (the client is told; values never are): `pcr07 does not match
 * the reference value tpm_pcr07`, with a count when several did. Undefined when none failed.
 */
export function pcrMismatchReason(tee: string, mismatched: readonly string[]): string | undefined {
  const first = mismatched[0];
  if (first === undefined) return undefined;
  const more = mismatched.length > 1 ? ` (and ${mismatched.length - 1} more: ${mismatched.slice(1, 6).join(', ')}${mismatched.length > 6 ? ', ...' : ''})` : '';
  return `${first} does not match the reference value ${tee}_${first}${more}`;
}
