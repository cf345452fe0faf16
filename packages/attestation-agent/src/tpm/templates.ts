import { TpmWriter } from './internal/tpm-bytes.js';
import { TPM_ALG, TPM_ECC_NIST_P256 } from './internal/tpm-alg.js';

export type KeyAlg = 'rsa' | 'ecc';

/** TPMA_OBJECT bits (TPM 2.0 Part 2, 8.3). */
const FIXED_TPM = 1 << 1;
const FIXED_PARENT = 1 << 4;
const SENSITIVE_DATA_ORIGIN = 1 << 5;
const USER_WITH_AUTH = 1 << 6;
const ADMIN_WITH_POLICY = 1 << 7;
const RESTRICTED = 1 << 16;
const DECRYPT = 1 << 17;
const SIGN = 1 << 18;

/**
 * PolicySecret(TPM_RH_ENDORSEMENT) policy digest shared by the default EK templates
 * (TCG EK Credential Profile 2.0, B.3.2).
 */
export const EK_AUTH_POLICY = Uint8Array.from(
  Buffer.from('837197674484b3f81a90cc8d46a5d724fd52d76e06520b64f2a1da1b331469aa', 'hex'),
);

const EK_ATTRIBUTES = FIXED_TPM | FIXED_PARENT | SENSITIVE_DATA_ORIGIN | ADMIN_WITH_POLICY | RESTRICTED | DECRYPT;

/**
 * Attributes any key used as an AK must have: a restricted signing key that never left this TPM
 * (TPM 2.0 Part 1, 25.2.2: only restricted keys refuse to sign data that starts with TPM_GENERATED).
 */
export const AK_REQUIRED_ATTRIBUTES = FIXED_TPM | RESTRICTED | SIGN;

/** Attributes tpm2_createak gives an AK: restricted signing key, usable with its (empty) auth value. */
export const AK_ATTRIBUTES = FIXED_TPM | FIXED_PARENT | SENSITIVE_DATA_ORIGIN | USER_WITH_AUTH | RESTRICTED | SIGN;

/** The `unique` field of a public area: an RSA modulus or an ECC point. */
export type PublicUnique = { readonly n: Uint8Array } | { readonly x: Uint8Array; readonly y: Uint8Array };

function tpm2bPublic(tpmtPublic: Uint8Array): Uint8Array {
  return new TpmWriter().tpm2b(tpmtPublic).finish();
}

/**
 * Default EK template as TPM2B_PUBLIC wire bytes: RSA 2048 (template L-1) or ECC NIST P-256
 * (template L-2) of the TCG EK Credential Profile 2.0, B.3.3 and B.3.4. A TPM derives the same EK
 * from the same template and endorsement seed, so the public key matches tpm2_createek's.
 */
export function ekTemplate(alg: KeyAlg, unique?: PublicUnique): Uint8Array {
  const w = new TpmWriter()
    .u16(alg === 'rsa' ? TPM_ALG.RSA : TPM_ALG.ECC)
    .u16(TPM_ALG.SHA256)
    .u32(EK_ATTRIBUTES)
    .tpm2b(EK_AUTH_POLICY)
    // symmetric: AES-128-CFB
    .u16(TPM_ALG.AES)
    .u16(128)
    .u16(TPM_ALG.CFB)
    // scheme: NULL
    .u16(TPM_ALG.NULL);
  if (alg === 'rsa') {
    w.u16(2048).u32(0).tpm2b(unique !== undefined && 'n' in unique ? unique.n : new Uint8Array(256));
  } else {
    const [x, y] = unique !== undefined && 'x' in unique ? [unique.x, unique.y] : [new Uint8Array(32), new Uint8Array(32)];
    w.u16(TPM_ECC_NIST_P256).u16(TPM_ALG.NULL).tpm2b(x).tpm2b(y);
  }
  return tpm2bPublic(w.finish());
}

/**
 * AK template as TPM2B_PUBLIC wire bytes, as tpm2_createak makes it: RSA 2048 with RSASSA-SHA256,
 * or ECC NIST P-256 with ECDSA-SHA256; restricted signing, fixedTPM, fixedParent,
 * sensitiveDataOrigin, userWithAuth, empty authPolicy.
 */
export function akTemplate(alg: KeyAlg, unique?: PublicUnique): Uint8Array {
  const w = new TpmWriter()
    .u16(alg === 'rsa' ? TPM_ALG.RSA : TPM_ALG.ECC)
    .u16(TPM_ALG.SHA256)
    .u32(AK_ATTRIBUTES)
    .tpm2b(new Uint8Array(0))
    .u16(TPM_ALG.NULL);
  if (alg === 'rsa') {
    w.u16(TPM_ALG.RSASSA)
      .u16(TPM_ALG.SHA256)
      .u16(2048)
      .u32(0)
      .tpm2b(unique !== undefined && 'n' in unique ? unique.n : new Uint8Array(0));
  } else {
    w.u16(TPM_ALG.ECDSA)
      .u16(TPM_ALG.SHA256)
      .u16(TPM_ECC_NIST_P256)
      .u16(TPM_ALG.NULL)
      .tpm2b(unique !== undefined && 'x' in unique ? unique.x : new Uint8Array(0))
      .tpm2b(unique !== undefined && 'x' in unique ? unique.y : new Uint8Array(0));
  }
  return tpm2bPublic(w.finish());
}
