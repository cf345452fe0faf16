import type { TpmAppraisal } from '../tpm/evidence/appraise.js';
import type { UnverifiedHclVariableData } from './hcl/variable-data.js';

declare const cvmClaimsBrand: unique symbol;

/**
 * Claims from appraised az-*-vtpm evidence, frozen. Trustee's members (`tpm.pcrNN`, `report_data`
 * = hex of the quote's extraData, `init_data` = hex of PCR8, and the hardware fields), Keyhold's
 * TPM claims at top level (`pcrNN`, `ak_public`, `quote`) so the built-in `<tee>_pcrNN` reference
 * values apply, and `hcl` (Azure's vm-configuration). Only the appraise functions construct one.
 */
export type CvmClaims = Readonly<Record<string, unknown>> & { readonly [cvmClaimsBrand]: true };

const verified = new WeakSet<object>();

/** True only for claims returned by `appraiseAzSnpVtpmEvidence` / `appraiseAzTdxVtpmEvidence`. */
export function isVerifiedCvmClaims(value: unknown): value is CvmClaims {
  return typeof value === 'object' && value !== null && verified.has(value);
}

function deepFreeze<T>(v: T): T {
  if (typeof v === 'object' && v !== null && !Object.isFrozen(v)) {
    for (const x of Object.values(v)) deepFreeze(x);
    Object.freeze(v);
  }
  return v;
}

/** Assemble and brand the claims (the caller has verified everything they are built from). */
export function vtpmClaims(
  tpm: TpmAppraisal,
  evidenceVersion: number,
  vars: UnverifiedHclVariableData,
  hardware: Record<string, unknown>,
): CvmClaims {
  const tpmClaims = tpm.claims as unknown as Record<string, unknown>;
  const pcrs: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(tpmClaims)) if (/^pcr\d\d$/.test(k)) pcrs[k] = v;
  const claims = deepFreeze({
    ...hardware,
    ...tpmClaims,
    tpm: { ...pcrs },
    evidence_version: evidenceVersion,
    hcl: {
      ...(vars.vmConfiguration !== undefined ? { vm_configuration: structuredClone(vars.vmConfiguration) } : {}),
      user_data: vars.userData === undefined ? null : Buffer.from(vars.userData).toString('hex'),
    },
  }) as unknown as CvmClaims;
  verified.add(claims);
  return claims;
}

/** Programmer misuse check: expected report data is 1..64 bytes. */
export function requireReportData(v: unknown): Uint8Array {
  if (!(v instanceof Uint8Array) || v.byteLength === 0 || v.byteLength > 64) throw new TypeError('expectedReportData must be a Uint8Array of 1..64 bytes');
  return v;
}

/** Programmer misuse check: an init-data digest is 32 bytes. */
export function requireInitDataDigest(v: unknown): Uint8Array | undefined {
  if (v === undefined) return undefined;
  if (!(v instanceof Uint8Array) || v.byteLength !== 32) throw new TypeError('initDataDigest must be a 32-byte Uint8Array');
  return v;
}
