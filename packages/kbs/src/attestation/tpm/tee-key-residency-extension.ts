/**
 * TPM-resident tee keys (issue 14): the agent sends, beside Trustee's `tpm` evidence fields, the
 * TPM2_Certify of the key its `tee-pubkey` names (a Trustee KBS ignores the member):
 *
 *   "tee_key": {
 *     "tpm2b_public": standard base64 of the key's TPM2B_PUBLIC,
 *     "certify_info": standard base64 of the TPMS_ATTEST TPM2_Certify returned (without its TPM2B size),
 *     "signature":    standard base64 of the TPMT_SIGNATURE over it,
 *     "sealed_pcrs":  [SHA-256 PCR indices]   (optional: the key's authPolicy is PolicyPCR over their quoted values)
 *   }
 *
 * After the quote verified and the AK is trusted, the certification is verified by
 * `verifyTeeKeyCertification` (same AK as the quote, extraData = the runtime-data digest the quote
 * carries, certified name = name of the sent public area, decryption-only non-duplicable key,
 * PolicyPCR seal over the quoted values, `tee-pubkey` = the certified key). Any failure refuses the
 * attestation (401) with the reason; success adds `tee_key_residency: "tpm"` and
 * `tee_key_sealed_pcrs` to the annotated evidence, so a resource policy can require them
 * (`evidence.tee_key_residency == "tpm"`). Evidence without the member gets no such claims.
 */
import { IdentityError, VerifierError, verifyTeeKeyCertification } from '@keyhold/verifier';
import { z } from 'zod';
import { KbsError } from '../../errors.js';
import type { TpmExtension, TpmExtensionInput, TpmExtensionResult } from './tpm-extension.js';

/** The evidence member carrying the certification. */
export const TEE_KEY_FIELD = 'tee_key';

// Standard base64 with padding; canonical form is checked after decoding.
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;
const base64 = (maxChars: number) => z.string().max(maxChars).regex(BASE64);

/** Bounds: a TPM2B_PUBLIC ≤ 1 KiB, a TPMS_ATTEST ≤ 2 KiB, a TPMT_SIGNATURE ≤ 1 KiB (as the verifier bounds them). */
const teeKeySchema = z
  .object({
    tpm2b_public: base64(1400),
    certify_info: base64(2800),
    signature: base64(1400),
    sealed_pcrs: z.array(z.number().int().min(0).max(23)).max(24).optional(),
  })
  .strict();

function decode(s: string, field: string): Uint8Array {
  const bytes = Buffer.from(s, 'base64');
  // SECURITY: one encoding per value (non-zero padding bits refused), as for Trustee's fields (RFC 4648 §3.5).
  if (bytes.toString('base64') !== s) throw new KbsError('ATTESTATION_FAILED', `${TEE_KEY_FIELD}.${field} is not canonical base64`);
  return new Uint8Array(bytes);
}

export class TeeKeyResidencyExtension implements TpmExtension {
  readonly name = 'tee-key-residency';

  async appraise(input: TpmExtensionInput): Promise<TpmExtensionResult> {
    const raw = input.evidence[TEE_KEY_FIELD];
    if (raw === undefined) return {};
    const parsed = teeKeySchema.safeParse(raw);
    // SECURITY: malformed or oversized members are refused before any decoding (validate at the boundary).
    if (!parsed.success) {
      const path = parsed.error.issues[0]?.path.join('.') ?? '';
      throw new KbsError('ATTESTATION_FAILED', `${TEE_KEY_FIELD} is malformed (at "${path}")`, { cause: parsed.error });
    }
    const m = parsed.data;
    // SECURITY: without the runtime data's tee-pubkey the certified key cannot be matched with the
    // key secrets are wrapped to: fail closed rather than claim residency.
    if (input.teePubkey === undefined) throw new KbsError('ATTESTATION_FAILED', `${TEE_KEY_FIELD}: no tee-pubkey to compare the certified key with`);
    let key;
    try {
      key = verifyTeeKeyCertification({
        quote: input.verified.quote,
        tpm2bPublic: decode(m.tpm2b_public, 'tpm2b_public'),
        certifyInfo: decode(m.certify_info, 'certify_info'),
        signature: decode(m.signature, 'signature'),
        // The quote verified that its extraData is the runtime-data digest: the certification must carry the same.
        expectedExtraData: input.verified.quote.extraData,
        sealedPcrs: m.sealed_pcrs ?? [],
        teePubkeyJwk: input.teePubkey,
      });
    } catch (err) {
      if (err instanceof VerifierError || err instanceof IdentityError) {
        throw new KbsError('ATTESTATION_FAILED', `${TEE_KEY_FIELD}: ${err.code}: ${err.message}`, { cause: err });
      }
      throw err;
    }
    const sealed = [...key.sealedPcrs];
    return {
      claims: { tee_key: { residency: 'tpm', type: key.type, name: Buffer.from(key.name).toString('hex'), sealed_pcrs: sealed, pcr_bank: key.pcrBank } },
      extra: { tee_key_residency: 'tpm', tee_key_sealed_pcrs: sealed },
    };
  }
}
