import { appraiseTpmEvidence, type TpmAppraisal } from '../tpm/evidence/appraise.js';
import { CvmError } from './errors.js';
import type { UnverifiedCvmEvidence } from './evidence/decode.js';

const TPM_ALG_RSASSA = 0x0014;
const TPM_ALG_SHA256 = 0x000b;

/** Marshal a raw RSASSA signature as the TPMT_SIGNATURE TPM2_Quote returned (RSASSA, SHA-256). */
export function rsassaSha256Signature(raw: Uint8Array): Uint8Array {
  // SECURITY: a signature longer than a TPM2B can carry cannot have come from a TPM (TPM2B_PUBLIC_KEY_RSA).
  if (raw.byteLength === 0 || raw.byteLength > 512) throw new CvmError('CVM_EVIDENCE_MALFORMED', 'tpm_quote.signature has an impossible length');
  const out = new Uint8Array(6 + raw.byteLength);
  const v = new DataView(out.buffer);
  v.setUint16(0, TPM_ALG_RSASSA);
  v.setUint16(2, TPM_ALG_SHA256);
  v.setUint16(4, raw.byteLength);
  out.set(raw, 6);
  return out;
}

/**
 * The usual TPM appraisal of the vTPM quote, with the AK taken from the (hardware-bound) HCL
 * report: the quote's signature with that AK (RSASSA SHA-256, as Azure's vTPM signs), extraData =
 * `expectedReportData`, the digest of the 24 SHA-256 PCRs, and PCR8 = the init-data binding when
 * `initDataDigest` is given. Returns the verifier's `TpmAppraisal`, so the KBS's event-log and IMA
 * steps run on it unchanged.
 *
 * @throws VerifierError (`QUOTE_*`, `TPM_*`, `EVIDENCE_*`).
 */
export function appraiseVtpmQuote(
  ev: UnverifiedCvmEvidence,
  akSpkiDer: Uint8Array,
  expectedReportData: Uint8Array,
  initDataDigest: Uint8Array | undefined,
): TpmAppraisal {
  const evidence = {
    ak_public: Buffer.from(akSpkiDer).toString('base64'),
    tpm_quote: {
      message: Buffer.from(ev.tpmQuote.message).toString('base64'),
      signature: Buffer.from(rsassaSha256Signature(ev.tpmQuote.signature)).toString('base64'),
      pcrs: ev.tpmQuote.pcrs.map((p) => Buffer.from(p).toString('hex')),
    },
  };
  return appraiseTpmEvidence(evidence, {
    expectedReportData,
    // The AK is trusted because the hardware report binds it (checked by the caller), not by a list.
    akTrust: { mode: 'not-checked' },
    ...(initDataDigest !== undefined ? { initDataDigest } : {}),
  });
}
