import { createPublicKey, timingSafeEqual, type JsonWebKey } from 'node:crypto';
import { VerifierError } from '../../errors.js';
import { tpmPublicToSpkiDer } from '../../identity/spki.js';
import { TPM_GENERATED_VALUE } from '../attest.js';
import { attestSignatureVerifies, signatureFitsAk } from '../attest-signature.js';
import { nameOfPublic } from '../name.js';
import type { PcrBank } from '../pcr-bank.js';
import { policyPcrDigest, type PolicyHashAlgorithm } from '../policy-pcr.js';
import { parseTpm2bPublic, type TpmPublic } from '../public.js';
import { importAkPublicKey } from '../quote/ak-public.js';
import { isVerifiedQuote, type VerifiedQuote } from '../quote/verify.js';
import { decodeUnverifiedSignature } from '../signature.js';
import { decodeUnverifiedCertifyAttest } from './decode.js';
import { checkTeeKeyAttributes } from './tee-key-attributes.js';

export interface VerifyTeeKeyCertificationInput {
  /** The quote the certification came with; its AK and PCR values are what the checks rely on. */
  readonly quote: VerifiedQuote;
  /** TPM2B_PUBLIC of the certified key, as sent. */
  readonly tpm2bPublic: Uint8Array;
  /** Marshalled TPMS_ATTEST from TPM2_Certify (`certifyInfo` without its TPM2B size). */
  readonly certifyInfo: Uint8Array;
  /** Marshalled TPMT_SIGNATURE over `certifyInfo`. */
  readonly signature: Uint8Array;
  /** The qualifying data the certification must carry (the runtime-data digest, as for the quote). */
  readonly expectedExtraData: Uint8Array;
  /**
   * PCR indices of the quote's bank the key is claimed to be sealed to (its authPolicy is
   * TPM2_PolicyPCR over their quoted values). Empty or absent: the key is claimed unsealed.
   */
  readonly sealedPcrs?: readonly number[];
  /** The public JWK secrets will be wrapped to (the runtime data's `tee-pubkey`). */
  readonly teePubkeyJwk: unknown;
}

declare const verifiedTeeKeyBrand: unique symbol;

/** A tee key that passed every check of `verifyTeeKeyCertification`. */
export interface VerifiedTeeKey {
  readonly [verifiedTeeKeyBrand]: true;
  readonly type: 'rsa' | 'ecc';
  /** The key's TPM name (nameAlg ‖ H(TPMT_PUBLIC)), as certified. */
  readonly name: Uint8Array;
  readonly publicArea: TpmPublic;
  /** DER SubjectPublicKeyInfo of the key (equal to the tee-pubkey JWK's). */
  readonly spkiDer: Uint8Array;
  /** The PCR indices (ascending) whose quoted values the key's use is bound to; empty when unsealed. */
  readonly sealedPcrs: readonly number[];
  readonly pcrBank: PcrBank;
}

const verifiedTeeKeys = new WeakSet<object>();

/** True only for objects returned by `verifyTeeKeyCertification`. */
export function isVerifiedTeeKey(value: unknown): value is VerifiedTeeKey {
  return typeof value === 'object' && value !== null && verifiedTeeKeys.has(value);
}

/** Algorithms a tee-pubkey JWK may name for each key type (what the KBS wraps with). */
const JWK_ALGS: Readonly<Record<'rsa' | 'ecc', readonly string[]>> = { rsa: ['RSA-OAEP-256'], ecc: ['ECDH-ES+A256KW', 'ECDH-ES'] };
/** Sealed-PCR lists longer than a PC Client bank are malformed. */
const MAX_SEALED_PCRS = 24;

function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  return a.byteLength === b.byteLength && timingSafeEqual(a, b);
}

function requireBytes(value: unknown, name: string): Uint8Array {
  if (!(value instanceof Uint8Array)) throw new TypeError(`verifyTeeKeyCertification: ${name} must be a Uint8Array`);
  return value;
}

/**
 * Verify that a tee key lives in the TPM that produced `quote` (TPM2_Certify by the same AK).
 * Guarantees, when it returns:
 *  1. `certifyInfo` is a well-formed TPMS_ATTEST with nothing appended, magic TPM_GENERATED_VALUE
 *     (built by a TPM) and type TPM_ST_ATTEST_CERTIFY;
 *  2. `signature` verifies over it with the AK that signed the verified quote (byte-identical SPKI),
 *     with a scheme that fits that AK;
 *  3. its extraData equals `expectedExtraData` (constant-time), so it was made for this exchange;
 *  4. its certified name equals the name computed from `tpm2bPublic` (nameAlg + hash), so the
 *     public area sent is exactly the object the TPM certified;
 *  5. that public area is a TPM-generated, non-duplicable, unrestricted decryption-only key
 *     (`checkTeeKeyAttributes`);
 *  6. sealed: the authPolicy equals TPM2_PolicyPCR over the quoted values of `sealedPcrs` in the
 *     quote's bank, computed here, and the key cannot be used by its auth value; unsealed: the
 *     authPolicy is empty;
 *  7. `teePubkeyJwk` is a public JWK of exactly this key (same SPKI), with an `alg`, if any, that
 *     fits its type.
 *
 * It does **not** check: that the AK is trusted (the quote's caller decides); the qualifiedName
 * (which parent the key sits under: fixedParent and fixedTPM already keep it in this TPM); the
 * clock/reset counters against the quote's; that the TPM will still honour the policy later (PCRs
 * may change after the quote — which is the point of sealing).
 *
 * @throws VerifierError (`CERTIFY_*`, `TEE_KEY_*`, `TPM_*`, `QUOTE_INVALID_AK`), IdentityError
 *   (`TPM_PUBLIC_*`) for a malformed public area; TypeError for malformed arguments.
 */
export function verifyTeeKeyCertification(input: VerifyTeeKeyCertificationInput): VerifiedTeeKey {
  const quote = input.quote;
  if (!isVerifiedQuote(quote)) throw new TypeError('verifyTeeKeyCertification: quote must come from verifyQuote');
  const tpm2bPublic = requireBytes(input.tpm2bPublic, 'tpm2bPublic');
  const certifyInfo = requireBytes(input.certifyInfo, 'certifyInfo');
  const signatureBytes = requireBytes(input.signature, 'signature');
  const expectedExtraData = requireBytes(input.expectedExtraData, 'expectedExtraData');
  const sealedInput = input.sealedPcrs ?? [];
  if (!Array.isArray(sealedInput)) throw new TypeError('verifyTeeKeyCertification: sealedPcrs must be an array');

  const pub = parseTpm2bPublic(tpm2bPublic);
  const sig = decodeUnverifiedSignature(signatureBytes);
  const attest = decodeUnverifiedCertifyAttest(certifyInfo);

  // SECURITY: stops the AK's signature over arbitrary data (TPM2_Sign of an external digest) from
  // being passed off as a certification (TPM 2.0 Part 2 §6.2, TPM_GENERATED_VALUE).
  if (attest.magic !== TPM_GENERATED_VALUE) {
    throw new VerifierError('CERTIFY_BAD_MAGIC', 'certification TPMS_ATTEST.magic is not TPM_GENERATED_VALUE');
  }
  // (TPMS_ATTEST.type is checked while decoding: anything but TPM_ST_ATTEST_CERTIFY throws CERTIFY_WRONG_TYPE.)

  const ak = importAkPublicKey(quote.akPublicKeyDer);
  // SECURITY: stops a certification by another key — another AK, another TPM, or software —
  // being accepted: only the AK that signed the verified quote counts (TPM 2.0 Part 3 §18.2,
  // TPM2_Certify; algorithm confusion refused first).
  if (!signatureFitsAk(sig, ak) || !attestSignatureVerifies(certifyInfo, sig, ak)) {
    throw new VerifierError('CERTIFY_SIGNATURE_INVALID', 'certification is not signed by the AK that signed the quote');
  }
  // SECURITY: stops replay of a certification made for another exchange: the TPM signed the
  // runtime-data digest into extraData, as in the quote (TPM 2.0 Part 3 §18.2, qualifyingData).
  if (!bytesEqual(attest.extraData, expectedExtraData)) {
    throw new VerifierError('CERTIFY_EXTRA_DATA_MISMATCH', 'certification extraData does not equal the expected runtime-data digest');
  }
  const name = nameOfPublic(pub);
  // SECURITY: stops a certification of one key being presented with another key's public area:
  // the TPM certified the name, and only the exact TPMT_PUBLIC hashes to it (TPM 2.0 Part 1 §16).
  if (!bytesEqual(attest.attested.name, name)) {
    throw new VerifierError('CERTIFY_NAME_MISMATCH', 'certified name is not the name of the public area sent');
  }

  const sealedPcrs = checkSealedList(sealedInput, quote);
  checkTeeKeyAttributes(pub, { sealed: sealedPcrs.length > 0 });
  if (sealedPcrs.length > 0) {
    const values = new Map(sealedPcrs.map((i) => [i, quote.pcrs.get(i) as Uint8Array]));
    const expected = policyPcrDigest({ hashAlg: pub.nameAlg as PolicyHashAlgorithm, bank: quote.pcrBank, values });
    // SECURITY: stops a key whose policy demands another PCR state (or none) from being reported as
    // sealed to the quoted state: the authPolicy must be PolicyPCR over exactly the quoted values
    // (TPM 2.0 Part 3 §23.7, PolicyPCR; computed here, not taken from the attester).
    if (!bytesEqual(pub.authPolicy, expected)) {
      throw new VerifierError('TEE_KEY_POLICY_MISMATCH', `authPolicy is not PolicyPCR over the quoted values of PCRs ${sealedPcrs.join(',')}`);
    }
  } else if (pub.authPolicy.length !== 0) {
    // SECURITY: an unsealed key with a policy the verifier cannot interpret is refused rather than
    // reported as plain (fail closed: the claims must say exactly how the key can be used).
    throw new VerifierError('TEE_KEY_POLICY_MISMATCH', 'key has an authPolicy but claims no sealed PCRs');
  }

  const spkiDer = tpmPublicToSpkiDer(pub);
  const jwkSpki = jwkSpkiDer(input.teePubkeyJwk, pub.type);
  // SECURITY: stops wrapping secrets to a key other than the certified one: the tee-pubkey bound
  // into the runtime data must be this TPM key, or a software key could ride along with a genuine
  // certification (key substitution).
  if (jwkSpki === undefined || !bytesEqual(jwkSpki, spkiDer)) {
    throw new VerifierError('TEE_KEY_JWK_MISMATCH', 'tee-pubkey is not the certified TPM key');
  }

  const verified = Object.freeze({ type: pub.type, name, publicArea: pub, spkiDer, sealedPcrs: Object.freeze(sealedPcrs), pcrBank: quote.pcrBank }) as unknown as VerifiedTeeKey;
  verifiedTeeKeys.add(verified);
  return verified;
}

/** The sealed PCR list, checked: distinct integers, each quoted; returned ascending. */
function checkSealedList(list: readonly unknown[], quote: VerifiedQuote): number[] {
  // SECURITY: bounds the list and refuses indices the quote did not cover: the policy digest may
  // only be computed from quote-verified values (TPM 2.0 Part 3 §18.4).
  if (list.length > MAX_SEALED_PCRS) throw new VerifierError('TEE_KEY_POLICY_MISMATCH', 'sealed PCR list is too long');
  const out = new Set<number>();
  for (const i of list) {
    if (typeof i !== 'number' || !Number.isInteger(i) || !quote.pcrs.has(i) || out.has(i)) {
      throw new VerifierError('TEE_KEY_POLICY_MISMATCH', 'sealed PCR list names a PCR the quote does not cover, or one twice');
    }
    out.add(i);
  }
  return [...out].sort((a, b) => a - b);
}

/** DER SPKI of a public JWK of the expected type, or undefined when it is not one. */
function jwkSpkiDer(jwk: unknown, type: 'rsa' | 'ecc'): Uint8Array | undefined {
  if (jwk === null || typeof jwk !== 'object' || Array.isArray(jwk)) return undefined;
  const j = jwk as Record<string, unknown>;
  // A private member means this is not a public key description; a wrong kty is another key type.
  if ('d' in j || j['kty'] !== (type === 'rsa' ? 'RSA' : 'EC')) return undefined;
  if (j['alg'] !== undefined && !JWK_ALGS[type].includes(j['alg'] as string)) return undefined;
  try {
    const key = createPublicKey({ key: j as JsonWebKey, format: 'jwk' });
    return new Uint8Array(key.export({ format: 'der', type: 'spki' }));
  } catch {
    return undefined;
  }
}
