import { z } from 'zod';
import { VerifierError } from '../../errors.js';

/** Number of PCRs in Trustee `tpm` evidence: the SHA-256 bank, PCR0..PCR23. */
export const TPM_EVIDENCE_PCR_COUNT = 24;

// Standard base64 with padding; canonical form is checked after decoding.
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;
const base64 = (maxChars: number) => z.string().max(maxChars).regex(BASE64);

/**
 * Trustee's `tpm` primary evidence (Trustee deps/verifier/src/tpm, guest-components attester/src/tpm).
 * Objects are loose: fields other engineers' modules add (`ek_public`, `ak_tpm2b_public`,
 * `event_log`, `ima_log`, ...) are ignored here and preserved in the parsed result.
 * Length limits bound decoding work: an SPKI ≤ 2 KiB, a TPMS_ATTEST ≤ 2 KiB, a TPMT_SIGNATURE ≤ 1 KiB.
 */
export const tpmEvidenceSchema = z.looseObject({
  ak_public: base64(2800),
  tpm_quote: z.looseObject({
    message: base64(2800),
    signature: base64(1400),
    pcrs: z.array(z.string().regex(/^[0-9a-fA-F]{64}$/)).length(TPM_EVIDENCE_PCR_COUNT),
  }),
});

export type TpmEvidenceFields = z.infer<typeof tpmEvidenceSchema>;

/** Decoded Trustee `tpm` evidence. **Unverified**: nothing here is checked until appraisal. */
export interface UnverifiedTpmEvidence {
  readonly akPublicDer: Uint8Array;
  readonly message: Uint8Array;
  readonly signature: Uint8Array;
  /** SHA-256 PCR0..PCR23 as claimed by the attester. */
  readonly pcrs: readonly Uint8Array[];
  /** The parsed JSON with every field, including ones this module does not read. */
  readonly fields: TpmEvidenceFields;
}

function fromBase64(s: string, field: string): Uint8Array {
  const bytes = Buffer.from(s, 'base64');
  // SECURITY: stops non-canonical base64 (non-zero padding bits) giving two encodings of the same
  // AK, which would confuse string-keyed caches and logs (RFC 4648 §3.5).
  if (bytes.toString('base64') !== s) {
    throw new VerifierError('EVIDENCE_MALFORMED', `tpm evidence: ${field} is not canonical base64`);
  }
  return new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/**
 * Validate the shape of already-JSON-parsed Trustee `tpm` evidence and decode its base64 and hex
 * fields. Binary structures are not parsed here (see `appraiseTpmEvidence`).
 *
 * @throws VerifierError `EVIDENCE_MALFORMED`.
 */
export function decodeUnverifiedTpmEvidence(evidence: unknown): UnverifiedTpmEvidence {
  const parsed = tpmEvidenceSchema.safeParse(evidence);
  // SECURITY: stops malformed or oversized evidence before any decoding (validate once at the
  // boundary; Trustee evidence shape, PROTOCOL-NOTES §2).
  if (!parsed.success) {
    const path = parsed.error.issues[0]?.path.join('.') ?? '';
    throw new VerifierError('EVIDENCE_MALFORMED', `tpm evidence does not have the expected shape (at "${path}")`, { cause: parsed.error });
  }
  const fields = parsed.data;
  return {
    akPublicDer: fromBase64(fields.ak_public, 'ak_public'),
    message: fromBase64(fields.tpm_quote.message, 'tpm_quote.message'),
    signature: fromBase64(fields.tpm_quote.signature, 'tpm_quote.signature'),
    pcrs: fields.tpm_quote.pcrs.map((h) => Uint8Array.from(Buffer.from(h, 'hex'))),
    fields,
  };
}
