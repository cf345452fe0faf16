/**
 * Wire names of Keyhold's hardware-identity additions to the KBS protocol, and the decoder of the
 * identity an agent names in its `/auth` Request (`extra-params["tpm-identity"]`). Trustee's own
 * fields are never changed: these are extra members a Trustee client simply does not send.
 *
 *   Request  extra-params: {"tpm-identity": {"ek_tpm2b_public": b64, "ek_cert"?: b64 DER, "ak_tpm2b_public": b64}}
 *   Challenge extra-params: {"tpm-credential": {"credential_blob": b64 TPM2B_ID_OBJECT, "encrypted_secret": b64 TPM2B_ENCRYPTED_SECRET}}
 *   Evidence (tpm primary_evidence, beside Trustee's fields): ek_tpm2b_public, ek_cert, ak_tpm2b_public, activated_credential (b64)
 */
import { z } from 'zod';
import { MAX_EK_CERT_BYTES, parseTpm2bPublic, type TpmPublic } from '@keyhold/verifier';
import { KbsError } from '../../errors.js';

export const IDENTITY_PARAM = 'tpm-identity';
export const CREDENTIAL_PARAM = 'tpm-credential';
export const ACTIVATED_CREDENTIAL_FIELD = 'activated_credential';
export const IDENTITY_EVIDENCE_FIELDS = ['ek_tpm2b_public', 'ek_cert', 'ak_tpm2b_public'] as const;

/** A TPM2B_PUBLIC of an RSA-4096 key is under 600 bytes; 2 KiB bounds any real one. */
const MAX_TPM2B_PUBLIC_BYTES = 2048;
/** The largest answer a TPM can give: a TPM2B_DIGEST of SHA-512. */
export const MAX_CREDENTIAL_BYTES = 64;

const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;
const b64 = (maxBytes: number) => z.string().max(Math.ceil(maxBytes / 3) * 4).regex(BASE64);

const IdentitySchema = z.strictObject({
  ek_tpm2b_public: b64(MAX_TPM2B_PUBLIC_BYTES),
  ek_cert: b64(MAX_EK_CERT_BYTES).optional(),
  ak_tpm2b_public: b64(MAX_TPM2B_PUBLIC_BYTES),
});

export type IdentityWire = z.infer<typeof IdentitySchema>;

/** The identity an agent named at `/auth`. Unverified: nothing here is trusted yet. */
export interface UnverifiedIdentity {
  readonly wire: IdentityWire;
  readonly ekPublic: TpmPublic;
  readonly akPublic: TpmPublic;
  readonly ekCertDer: Uint8Array | undefined;
}

const refuse = (msg: string, cause?: unknown): KbsError => new KbsError('ATTESTATION_FAILED', `TPM_IDENTITY_MALFORMED: ${msg}`, cause !== undefined ? { cause } : undefined);

/** Standard base64 → bytes, refusing non-canonical encodings (two spellings of one key). */
export function canonicalBase64(s: string, field: string): Uint8Array {
  const bytes = Buffer.from(s, 'base64');
  // SECURITY: one byte string, one spelling: non-canonical base64 (non-zero pad bits) could make the
  // "same AK" compare unequal in one place and equal in another (RFC 4648 §3.5).
  if (bytes.toString('base64') !== s) throw refuse(`${field} is not canonical base64`);
  return new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/**
 * The identity in a Request's extra-params; undefined when the client named none (a Trustee
 * client, or an agent run without identity). Throws ATTESTATION_FAILED on a malformed one.
 */
export function decodeUnverifiedIdentity(extraParams: Readonly<Record<string, unknown>>): UnverifiedIdentity | undefined {
  const raw = extraParams[IDENTITY_PARAM];
  if (raw === undefined) return undefined;
  const parsed = IdentitySchema.safeParse(raw);
  // SECURITY: shape and size are bounded before any decoding or ASN.1/TPM parsing (DoS, confusion).
  if (!parsed.success) throw refuse(`"${IDENTITY_PARAM}" does not have the expected shape (at "${parsed.error.issues[0]?.path.join('.') ?? ''}")`);
  const wire = parsed.data;
  let ekPublic: TpmPublic;
  let akPublic: TpmPublic;
  try {
    ekPublic = parseTpm2bPublic(canonicalBase64(wire.ek_tpm2b_public, 'ek_tpm2b_public'));
    akPublic = parseTpm2bPublic(canonicalBase64(wire.ak_tpm2b_public, 'ak_tpm2b_public'));
  } catch (err) {
    if (err instanceof KbsError) throw err;
    const code = (err as { code?: unknown }).code;
    throw new KbsError('ATTESTATION_FAILED', `${typeof code === 'string' ? code : 'TPM_PUBLIC_MALFORMED'}: ${(err as Error).message}`, { cause: err });
  }
  return {
    wire,
    ekPublic,
    akPublic,
    ekCertDer: wire.ek_cert !== undefined ? canonicalBase64(wire.ek_cert, 'ek_cert') : undefined,
  };
}
