import { createHash, timingSafeEqual } from 'node:crypto';
import { VerifierError } from '../../errors.js';
import { TPM_GENERATED_VALUE, decodeUnverifiedAttest, type UnverifiedClockInfo } from '../attest.js';
import { isPcrBank, pcrBankAlgId, pcrBankDigestBytes, type PcrBank, type QuoteHashAlgorithm } from '../pcr-bank.js';
import { decodeUnverifiedSignature, type UnverifiedSignature } from '../signature.js';
import { attestSignatureVerifies, signatureFitsAk } from '../attest-signature.js';
import { importAkPublicKey } from './ak-public.js';

/** Highest PCR index a caller may supply (a 4-byte selection bitmap). */
const MAX_PCR_INDEX = 31;

/** PCR values the caller claims were quoted: one bank, index → digest. */
export interface QuotedPcrValues {
  readonly bank: PcrBank;
  readonly values: ReadonlyMap<number, Uint8Array>;
}

export interface VerifyQuoteInput {
  /** Marshalled TPMS_ATTEST (what TPM2_Quote returns as `quoted`, without the TPM2B size). */
  readonly message: Uint8Array;
  /** Marshalled TPMT_SIGNATURE. */
  readonly signature: Uint8Array;
  /** The AK public key as DER SubjectPublicKeyInfo (RSA 2048–4096, EC P-256 / P-384). */
  readonly akPublicKeyDer: Uint8Array;
  /** The PCR values the quote must cover, exactly. */
  readonly pcrs: QuotedPcrValues;
  /** The qualifying data (nonce) the verifier asked the TPM to include. */
  readonly expectedExtraData: Uint8Array;
}

declare const verifiedQuoteBrand: unique symbol;

/** A quote that passed every check of `verifyQuote`. Only `verifyQuote` constructs one. */
export interface VerifiedQuote {
  readonly [verifiedQuoteBrand]: true;
  readonly akPublicKeyDer: Uint8Array;
  readonly signatureScheme: UnverifiedSignature['scheme'];
  /** Hash of the signature scheme; also the hash of the quote's pcrDigest. */
  readonly hashAlgorithm: QuoteHashAlgorithm;
  /** TPMS_ATTEST.qualifiedSigner (TPM2B_NAME). Not checked against the AK (see verifyQuote). */
  readonly qualifiedSigner: Uint8Array;
  readonly extraData: Uint8Array;
  readonly clockInfo: UnverifiedClockInfo;
  readonly firmwareVersion: bigint;
  readonly pcrBank: PcrBank;
  /** The quoted PCR values, index → digest, ascending index order. */
  readonly pcrs: ReadonlyMap<number, Uint8Array>;
  readonly pcrDigest: Uint8Array;
}

const verifiedQuotes = new WeakSet<object>();

/** True only for objects returned by `verifyQuote` (a runtime check behind the type brand). */
export function isVerifiedQuote(value: unknown): value is VerifiedQuote {
  return typeof value === 'object' && value !== null && verifiedQuotes.has(value);
}

function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  return a.byteLength === b.byteLength && timingSafeEqual(a, b);
}

function requireBytes(value: unknown, name: string): Uint8Array {
  if (!(value instanceof Uint8Array)) throw new TypeError(`verifyQuote: ${name} must be a Uint8Array`);
  return value;
}

/**
 * Verify a TPM2_Quote. Guarantees, when it returns:
 *  1. `message` is a well-formed TPMS_ATTEST with nothing appended, whose magic is
 *     TPM_GENERATED_VALUE (the TPM built it, it is not arbitrary data signed with the AK) and whose
 *     type is TPM_ST_ATTEST_QUOTE;
 *  2. `signature` is a well-formed TPMT_SIGNATURE (RSASSA, RSAPSS or ECDSA; SHA-256 or SHA-384),
 *     of a scheme that fits the AK's key type, and it verifies over `message` with the AK;
 *  3. the quote's extraData equals `expectedExtraData` (compared in constant time), so the quote
 *     is fresh for that nonce (freshness is only as good as the nonce: an empty one gives none);
 *  4. the quote selects exactly one bank, the supplied one, and exactly the supplied PCR indices;
 *  5. every supplied PCR value has the bank's digest length, and the hash (the signature scheme's
 *     hash, as TPM2_Quote computes it, TPM 2.0 Part 3 §18.4) of the values concatenated in
 *     ascending index order equals the quote's pcrDigest.
 *
 * It does **not** check: that the AK is a genuine TPM key or belongs to this node (AK trust — the
 * caller decides, e.g. a trusted-AK list or EK credential activation); that qualifiedSigner is the
 * AK's name (only a TPMT_PUBLIC, not an SPKI, yields the name); the clock, resetCount and
 * restartCount (monotonicity across quotes, reboot detection) or `safe`; the firmware version;
 * what the PCR values mean (event-log replay, reference values).
 *
 * @throws VerifierError with a stable code for every rejection; TypeError for malformed arguments.
 */
export function verifyQuote(input: VerifyQuoteInput): VerifiedQuote {
  const message = requireBytes(input.message, 'message');
  const signatureBytes = requireBytes(input.signature, 'signature');
  const akDer = requireBytes(input.akPublicKeyDer, 'akPublicKeyDer');
  const expectedExtraData = requireBytes(input.expectedExtraData, 'expectedExtraData');
  const { bank, values } = input.pcrs;
  if (!isPcrBank(bank)) throw new TypeError('verifyQuote: pcrs.bank must be sha1, sha256 or sha384');
  if (!(values instanceof Map)) throw new TypeError('verifyQuote: pcrs.values must be a Map');
  for (const [index, value] of values) {
    if (!Number.isInteger(index) || index < 0 || index > MAX_PCR_INDEX) {
      throw new TypeError(`verifyQuote: PCR index must be an integer in 0..${MAX_PCR_INDEX}`);
    }
    requireBytes(value, `pcrs.values[${index}]`);
  }

  const sig = decodeUnverifiedSignature(signatureBytes);
  const attest = decodeUnverifiedAttest(message);

  // SECURITY: stops the AK's signature over arbitrary (non-TPM-generated) data, e.g. from
  // TPM2_Sign of an external digest, being passed off as a quote (TPM 2.0 Part 2 §6.2,
  // TPM_GENERATED_VALUE; restricted keys only sign digests that do not start with it).
  if (attest.magic !== TPM_GENERATED_VALUE) {
    throw new VerifierError('QUOTE_BAD_MAGIC', 'TPMS_ATTEST.magic is not TPM_GENERATED_VALUE');
  }
  // (TPMS_ATTEST.type is checked while decoding: anything but TPM_ST_ATTEST_QUOTE throws QUOTE_WRONG_TYPE.)

  const ak = importAkPublicKey(akDer);
  // SECURITY: stops algorithm confusion, e.g. an ECDSA-shaped signature presented for an RSA AK
  // (TPM 2.0 Part 2 §11.3.4; the scheme must be one the key can produce).
  if (!signatureFitsAk(sig, ak)) {
    throw new VerifierError('QUOTE_SCHEME_MISMATCH', `signature scheme ${sig.scheme} does not fit a ${ak.kind} AK`);
  }
  // SECURITY: stops forged or altered quotes: only the AK's private key (inside the TPM) can
  // produce a signature over this TPMS_ATTEST (TPM 2.0 Part 3 §18.4, TPM2_Quote).
  if (!attestSignatureVerifies(message, sig, ak)) {
    throw new VerifierError('QUOTE_SIGNATURE_INVALID', 'quote signature does not verify with the AK');
  }
  // SECURITY: stops replay of an old quote (or one made for another session): the TPM signed the
  // verifier's nonce into extraData (TPM 2.0 Part 3 §18.4, qualifyingData).
  if (!bytesEqual(attest.extraData, expectedExtraData)) {
    throw new VerifierError('QUOTE_EXTRA_DATA_MISMATCH', 'quote extraData does not equal the expected nonce');
  }

  const selection = attest.attested.pcrSelect;
  const entry = selection[0];
  // SECURITY: stops PCR values the TPM did not quote being reported as quoted, and quoted PCRs
  // being dropped from what policy sees: the signed selection must be exactly the supplied set,
  // in one bank (TPM 2.0 Part 2 §10.9.7; cf. go-attestation's quote PCR verification).
  if (selection.length !== 1 || entry === undefined || entry.hashAlg !== pcrBankAlgId(bank)) {
    throw new VerifierError('QUOTE_PCR_SELECTION_MISMATCH', `quote does not select exactly the ${bank} bank`);
  }
  const suppliedIndices = [...values.keys()].sort((a, b) => a - b);
  // SECURITY: (as above) an index quoted but not supplied, or supplied but not quoted, is rejected;
  // an empty selection attests no platform state at all.
  if (
    entry.pcrs.length === 0 ||
    entry.pcrs.length !== suppliedIndices.length ||
    entry.pcrs.some((pcr, i) => pcr !== suppliedIndices[i])
  ) {
    throw new VerifierError('QUOTE_PCR_SELECTION_MISMATCH', 'quoted PCR selection differs from the supplied PCR indices');
  }

  const digestBytes = pcrBankDigestBytes(bank);
  const hash = createHash(sig.hash);
  const pcrs = new Map<number, Uint8Array>();
  for (const index of entry.pcrs) {
    const value = values.get(index) as Uint8Array;
    // SECURITY: stops ambiguous concatenations (value boundaries shifted between PCRs that still
    // hash to pcrDigest) and values that cannot be a digest of this bank (TPM 2.0 Part 1 §17).
    if (value.byteLength !== digestBytes) {
      throw new VerifierError('QUOTE_PCR_VALUE_LENGTH', `PCR ${index} value has ${value.byteLength} bytes, ${bank} needs ${digestBytes}`);
    }
    hash.update(value);
    pcrs.set(index, value.slice());
  }
  // SECURITY: stops PCR values other than those the TPM held from being accepted: the TPM signed
  // H(PCR values in selection order) as pcrDigest (TPM 2.0 Part 3 §18.4, PCRComputeCurrentDigest).
  if (!bytesEqual(hash.digest(), attest.attested.pcrDigest)) {
    throw new VerifierError('QUOTE_PCR_DIGEST_MISMATCH', 'digest of the supplied PCR values differs from the quoted pcrDigest');
  }

  const verified = Object.freeze({
    akPublicKeyDer: akDer.slice(),
    signatureScheme: sig.scheme,
    hashAlgorithm: sig.hash,
    qualifiedSigner: attest.qualifiedSigner,
    extraData: attest.extraData,
    clockInfo: Object.freeze({ ...attest.clockInfo }),
    firmwareVersion: attest.firmwareVersion,
    pcrBank: bank,
    pcrs,
    pcrDigest: attest.attested.pcrDigest,
  }) as unknown as VerifiedQuote;
  verifiedQuotes.add(verified);
  return verified;
}
