import { claimAt } from '../token/ear-claims.js';

/**
 * The first reason an appraisal step recorded in a token's claims: a member of
 * `annotated-evidence.<tee>` that is an object with `ok: false` and a string `reason` (e.g.
 * `tpm.measured_boot`, `tpm.ima`), else the attestation policy's own reason
 * (`ear.veraison.policy-claims.reason`, e.g. `pcr07 does not match the reference value tpm_pcr07`).
 * Used so a policy denial can tell the client what failed; both hold names, never values.
 */
export function appraisalReasonOf(claims: Record<string, unknown>): string | undefined {
  return stepReasonOf(claims) ?? policyReasonOf(claims);
}

function policyReasonOf(claims: Record<string, unknown>): string | undefined {
  const reason = claimAt(claims, ['submods', 'cpu0', 'ear.veraison.policy-claims', 'reason']);
  return typeof reason === 'string' ? reason.slice(0, 300) : undefined;
}

function stepReasonOf(claims: Record<string, unknown>): string | undefined {
  const evidence = claimAt(claims, ['submods', 'cpu0', 'ear.veraison.annotated-evidence']);
  if (evidence === null || typeof evidence !== 'object') return undefined;
  for (const tee of Object.values(evidence as Record<string, unknown>)) {
    if (tee === null || typeof tee !== 'object') continue;
    for (const member of Object.values(tee as Record<string, unknown>)) {
      const m = member as { ok?: unknown; reason?: unknown } | null;
      if (m !== null && typeof m === 'object' && m.ok === false && typeof m.reason === 'string') return m.reason;
    }
  }
  return undefined;
}
