import type { TpmHashName } from '@keyhold/verifier/tpm-keys';
import { TpmWriter } from './internal/tpm-bytes.js';
import { TPM_ALG, TPM_ECC_NIST_P256, TPM_ECC_NIST_P384 } from './internal/tpm-alg.js';

export type KeyAlg = 'rsa' | 'ecc';

/**
 * EK templates the agent can create: `rsa` (L-1, RSA 2048), `ecc` (L-2, ECC NIST P-256), and
 * `ecc384` (high-range H-3, ECC NIST P-384 with SHA-384 and the PolicyOR "Policy B"; the EK that
 * swtpm certifies at NV 0x01c00016). TCG EK Credential Profile 2.x, B.3 and B.4.
 */
export type EkAlg = KeyAlg | 'ecc384';

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

const hex = (h: string): Uint8Array => Uint8Array.from(Buffer.from(h, 'hex'));

/**
 * SHA-384 branches of the high-range EK policy (TCG EK Credential Profile 2.x, B.4.x "Computing
 * PolicyA/PolicyC"): A = PolicySecret(TPM_RH_ENDORSEMENT), C = PolicyAuthorizeNV(0x01c07f02).
 */
export const EK_POLICY_A_SHA384 = hex('8bbf2266537c171cb56e403c4dc1d4b64f432611dc386e6f532050c3278c930e143e8bb1133824ccb431053871c6db53');
export const EK_POLICY_C_SHA384 = hex('d6032ce61f2fb3c240eb3cf6a33237ef2b6a16f4293c22b455e261cffd217ad5b4947c2d73e63005eed2dc2b3593d165');
/** Policy B = PolicyOR(A, C) with SHA-384: the authPolicy of high-range template H-3. */
export const EK_HIGH_RANGE_POLICY_SHA384 = hex('b26e7d28d11a50bc53d882bcf5fd3a1a074148bb35d3b4e4cb1c0ad9bde419cacb47ba09699646150f9fc000f3f80e12');

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

/** High-range templates add userWithAuth (TCG EK Credential Profile 2.x, B.4). */
const EK_HIGH_RANGE_ATTRIBUTES = EK_ATTRIBUTES | USER_WITH_AUTH;

/**
 * ECC NIST P-384 high-range template H-3 (TCG EK Credential Profile 2.x, B.4): nameAlg SHA-384,
 * AES-256-CFB, authPolicy Policy B, and an empty `unique` (high-range templates do not pad it).
 * Checked against swtpm 0.7, whose EK certificate at 0x01c00016 certifies exactly this key.
 */
function ekTemplateH3(unique?: PublicUnique): Uint8Array {
  const [x, y] = unique !== undefined && 'x' in unique ? [unique.x, unique.y] : [new Uint8Array(0), new Uint8Array(0)];
  const w = new TpmWriter()
    .u16(TPM_ALG.ECC)
    .u16(TPM_ALG.SHA384)
    .u32(EK_HIGH_RANGE_ATTRIBUTES)
    .tpm2b(EK_HIGH_RANGE_POLICY_SHA384)
    .u16(TPM_ALG.AES)
    .u16(256)
    .u16(TPM_ALG.CFB)
    .u16(TPM_ALG.NULL)
    .u16(TPM_ECC_NIST_P384)
    .u16(TPM_ALG.NULL)
    .tpm2b(x)
    .tpm2b(y);
  return tpm2bPublic(w.finish());
}

/**
 * EK template as TPM2B_PUBLIC wire bytes: RSA 2048 (template L-1) or ECC NIST P-256 (template L-2)
 * of the TCG EK Credential Profile 2.0, B.3.3 and B.3.4, or ECC NIST P-384 (high-range H-3, B.4).
 * A TPM derives the same EK from the same template and endorsement seed, so the public key matches
 * tpm2_createek's (L-1/L-2) and the key in the TPM's EK certificate.
 */
export function ekTemplate(alg: EkAlg, unique?: PublicUnique): Uint8Array {
  if (alg === 'ecc384') return ekTemplateH3(unique);
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

/** How an EK's authPolicy is satisfied: a policy session of `hashAlg` with PolicySecret(endorsement), then PolicyOR over `orBranches` when set. */
export interface EkPolicy {
  readonly hashAlg: number;
  readonly orBranches?: readonly Uint8Array[];
}

const equalBytes = (a: Uint8Array, b: Uint8Array): boolean => Buffer.from(a).equals(Buffer.from(b));

/**
 * The policy session an EK made from one of our templates needs, found from its nameAlg and
 * authPolicy; undefined for any other key (the caller refuses it).
 */
export function ekPolicyOf(nameAlg: TpmHashName, authPolicy: Uint8Array): EkPolicy | undefined {
  if (nameAlg === 'sha256' && equalBytes(authPolicy, EK_AUTH_POLICY)) return { hashAlg: TPM_ALG.SHA256 };
  if (nameAlg === 'sha384' && equalBytes(authPolicy, EK_HIGH_RANGE_POLICY_SHA384)) {
    return { hashAlg: TPM_ALG.SHA384, orBranches: [EK_POLICY_A_SHA384, EK_POLICY_C_SHA384] };
  }
  return undefined;
}

/** Which of our EK templates a public area was made from (ignoring `unique`), or undefined. */
export function ekAlgOfPublic(tpm2bPublicArea: Uint8Array): EkAlg | undefined {
  for (const alg of ['rsa', 'ecc', 'ecc384'] as const) {
    const t = ekTemplate(alg);
    // Everything before the unique field is fixed by the template: compare that prefix (after the TPM2B size).
    const fixed = alg === 'rsa' ? t.length - 2 - 256 : alg === 'ecc' ? t.length - 4 - 64 : t.length - 4;
    if (tpm2bPublicArea.length > fixed && equalBytes(tpm2bPublicArea.subarray(2, fixed), t.subarray(2, fixed))) return alg;
  }
  return undefined;
}

const NO_DA = 1 << 10;

/** Attributes of the TCG storage root key template (Provisioning Guidance 1.0, 7.5.1). */
export const SRK_ATTRIBUTES = FIXED_TPM | FIXED_PARENT | SENSITIVE_DATA_ORIGIN | USER_WITH_AUTH | NO_DA | RESTRICTED | DECRYPT;

/**
 * The storage root key the agent's tee keys live under: the TCG reference ECC NIST P-256 SRK
 * template (TCG TPM v2.0 Provisioning Guidance 1.0, 7.5.1; go-tpm's ECCSRKTemplate): SHA-256,
 * restricted decrypt, noDA, AES-128-CFB, unique = 32 zero bytes each. A TPM derives the same SRK
 * from it every time (owner seed), so a tee key's blobs load again after a restart. tpm2-tools
 * makes the same key with `tpm2_createprimary -C o -G ecc256:aes128cfb -a
 * 'fixedtpm|fixedparent|sensitivedataorigin|userwithauth|noda|restricted|decrypt' -u UNIQUE`, where
 * UNIQUE is tpm2-tss's in-memory TPMS_ECC_POINT (little-endian size 32 and a 128-byte buffer, twice).
 */
export function srkTemplate(): Uint8Array {
  const w = new TpmWriter()
    .u16(TPM_ALG.ECC)
    .u16(TPM_ALG.SHA256)
    .u32(SRK_ATTRIBUTES)
    .tpm2b(new Uint8Array(0))
    .u16(TPM_ALG.AES)
    .u16(128)
    .u16(TPM_ALG.CFB)
    .u16(TPM_ALG.NULL)
    .u16(TPM_ECC_NIST_P256)
    .u16(TPM_ALG.NULL)
    .tpm2b(new Uint8Array(32))
    .tpm2b(new Uint8Array(32));
  return tpm2bPublic(w.finish());
}

/**
 * Attributes of a tee key: decryption only, generated in the TPM and never leaving it
 * (fixedTPM, fixedParent, sensitiveDataOrigin), usable with its empty auth value.
 */
export const TEE_KEY_ATTRIBUTES = FIXED_TPM | FIXED_PARENT | SENSITIVE_DATA_ORIGIN | USER_WITH_AUTH | DECRYPT;
/** A sealed tee key: as above but usable only through its authPolicy (no userWithAuth). */
export const SEALED_TEE_KEY_ATTRIBUTES = FIXED_TPM | FIXED_PARENT | SENSITIVE_DATA_ORIGIN | DECRYPT;

/** TPMA_OBJECT bits by name, for callers that build non-standard templates (tests of refusals). */
export const OBJECT_ATTRIBUTE = { fixedTPM: FIXED_TPM, fixedParent: FIXED_PARENT, sensitiveDataOrigin: SENSITIVE_DATA_ORIGIN, userWithAuth: USER_WITH_AUTH, restricted: RESTRICTED, decrypt: DECRYPT, sign: SIGN } as const;

export interface TeeKeyTemplateOptions {
  /** authPolicy (e.g. a PolicyPCR digest); with it the key is made without userWithAuth. */
  readonly authPolicy?: Uint8Array;
  /** Override the object attributes (tests of the verifier's refusals). */
  readonly attributes?: number;
  /** `null`: no scheme (the TPM then also allows `sign`); default OAEP-SHA256 / ECDH-SHA256. */
  readonly scheme?: 'default' | 'null';
}

/**
 * Template (TPM2B_PUBLIC) of a tee key: RSA 2048 restricted to OAEP with SHA-256, or ECC NIST
 * P-256 with ECDH (SHA-256), nameAlg SHA-256, no symmetric algorithm, empty unique.
 */
export function teeKeyTemplate(alg: KeyAlg, opts: TeeKeyTemplateOptions = {}): Uint8Array {
  const policy = opts.authPolicy ?? new Uint8Array(0);
  const attributes = opts.attributes ?? (policy.length > 0 ? SEALED_TEE_KEY_ATTRIBUTES : TEE_KEY_ATTRIBUTES);
  const w = new TpmWriter()
    .u16(alg === 'rsa' ? TPM_ALG.RSA : TPM_ALG.ECC)
    .u16(TPM_ALG.SHA256)
    .u32(attributes)
    .tpm2b(policy)
    .u16(TPM_ALG.NULL);
  const noScheme = opts.scheme === 'null';
  if (alg === 'rsa') {
    if (noScheme) w.u16(TPM_ALG.NULL);
    else w.u16(TPM_ALG.OAEP).u16(TPM_ALG.SHA256);
    w.u16(2048).u32(0).tpm2b(new Uint8Array(0));
  } else {
    if (noScheme) w.u16(TPM_ALG.NULL);
    else w.u16(TPM_ALG.ECDH).u16(TPM_ALG.SHA256);
    w.u16(TPM_ECC_NIST_P256).u16(TPM_ALG.NULL).tpm2b(new Uint8Array(0)).tpm2b(new Uint8Array(0));
  }
  return tpm2bPublic(w.finish());
}
