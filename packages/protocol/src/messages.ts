import * as z from 'zod';

/** The only protocol version Keyhold speaks, as Trustee's KBS requires. */
export const PROTOCOL_VERSION = '0.4.0';

/** TEE types Trustee defines; Keyhold appraises `tpm` (and `sample` is never accepted). */
export const TEE_TYPES = ['tpm', 'az-snp-vtpm', 'az-tdx-vtpm', 'snp', 'tdx', 'sgx', 'se', 'cca', 'csv', 'sample'] as const;
export type Tee = (typeof TEE_TYPES)[number];

const b64url = z.string().regex(/^[A-Za-z0-9_-]+$/, 'base64url without padding');

/** Public JWK an attester binds into its evidence; the KBS wraps secrets to it. */
export const TeePubkeySchema = z.union([
  z
    .object({
      kty: z.literal('EC'),
      crv: z.enum(['P-256', 'P-384', 'P-521']),
      alg: z.string().optional(),
      x: b64url,
      y: b64url,
    })
    .strict(),
  z
    .object({
      kty: z.literal('RSA'),
      alg: z.string().optional(),
      n: b64url,
      e: b64url,
    })
    .strict(),
]);
export type TeePubkey = z.infer<typeof TeePubkeySchema>;

export const RequestSchema = z.object({
  version: z.string(),
  tee: z.string(),
  'extra-params': z.union([z.record(z.string(), z.unknown()), z.string()]).optional(),
});
export type KbsRequest = z.infer<typeof RequestSchema>;

export const ChallengeSchema = z.object({
  nonce: z.string(),
  'extra-params': z.union([z.record(z.string(), z.unknown()), z.string()]),
});
export type Challenge = z.infer<typeof ChallengeSchema>;

export const InitDataSchema = z.object({
  format: z.string(),
  body: z.string(),
});
export type InitData = z.infer<typeof InitDataSchema>;

export const RuntimeDataSchema = z.object({
  nonce: z.string(),
  'tee-pubkey': TeePubkeySchema,
});

export const AttestationSchema = z.object({
  'init-data': InitDataSchema.optional().nullable(),
  'runtime-data': RuntimeDataSchema,
  'tee-evidence': z.object({
    primary_evidence: z.unknown(),
    additional_evidence: z.string().optional().default(''),
  }),
});
export type Attestation = z.input<typeof AttestationSchema>;
export type ParsedAttestation = z.output<typeof AttestationSchema>;

export const AttestationResponseSchema = z.object({ token: z.string() });

/** The flattened JWE the resource endpoint answers with. */
export const ResourceResponseSchema = z.object({
  protected: z.string(),
  encrypted_key: z.string(),
  iv: z.string(),
  ciphertext: z.string(),
  tag: z.string(),
  aad: z.string().optional(),
});
export type ResourceResponse = z.infer<typeof ResourceResponseSchema>;

export const ErrorInformationSchema = z.object({ type: z.string(), detail: z.string() });

/** Trustee `tpm` primary evidence (PROTOCOL-NOTES §2) plus Keyhold's optional additions. */
export const TpmEvidenceSchema = z
  .object({
    ak_public: z.string(),
    tpm_quote: z.object({
      message: z.string(),
      signature: z.string(),
      pcrs: z.array(z.string()),
    }),
  })
  .passthrough();
export type TpmEvidence = z.infer<typeof TpmEvidenceSchema>;
