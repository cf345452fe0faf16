import { VerifierError, type VerifierErrorCode } from '../errors.js';
import { readPcrSelectionList, type PcrSelection } from './pcr-selection.js';
import { TpmReader } from './quote/tpm-reader.js';

/** TPM_GENERATED_VALUE: TPMS_ATTEST.magic of every structure the TPM itself built (Part 2 §6.2). */
export const TPM_GENERATED_VALUE = 0xff544347;
/** TPM_ST_ATTEST_QUOTE: TPMS_ATTEST.type of a TPM2_Quote result (Part 2 §6.9). */
export const TPM_ST_ATTEST_QUOTE = 0x8018;
/** TPM_ST_ATTEST_CERTIFY: TPMS_ATTEST.type of a TPM2_Certify result (Part 2 §6.9). */
export const TPM_ST_ATTEST_CERTIFY = 0x8017;

/** Largest TPMS_ATTEST accepted (TPM2B_ATTEST buffer is sizeof(TPMS_ATTEST); real quotes are < 1 KiB). */
export const MAX_ATTEST_BYTES = 2048;
/** TPM2B_NAME: a TPM_ALG_ID and a digest of at most 64 bytes, or a 4-byte handle (Part 2 §10.5.3). */
export const MAX_NAME_BYTES = 66;
/** TPM2B_DATA (qualifying data) accepted up to 64 bytes. */
export const MAX_EXTRA_DATA_BYTES = 64;
/** TPM2B_DIGEST: at most the largest digest, SHA-512 (Part 2 §10.4.2). */
const MAX_DIGEST_BYTES = 64;

/** TPMS_CLOCK_INFO (Part 2 §10.11.1). */
export interface UnverifiedClockInfo {
  /** Milliseconds the TPM has been powered since it was last cleared (UINT64). */
  readonly clock: bigint;
  readonly resetCount: number;
  readonly restartCount: number;
  readonly safe: boolean;
}

/**
 * A decoded TPMS_ATTEST of type TPM_ST_ATTEST_QUOTE. **Unverified**: nothing here has been
 * checked against a signature; only `verifyQuote` turns it into something to rely on.
 */
export interface UnverifiedAttest {
  readonly magic: number;
  readonly type: typeof TPM_ST_ATTEST_QUOTE;
  /** TPM2B_NAME of the signing key. */
  readonly qualifiedSigner: Uint8Array;
  /** TPM2B_DATA: the caller's qualifying data (nonce). */
  readonly extraData: Uint8Array;
  readonly clockInfo: UnverifiedClockInfo;
  readonly firmwareVersion: bigint;
  /** TPMS_QUOTE_INFO. */
  readonly attested: {
    readonly pcrSelect: readonly PcrSelection[];
    readonly pcrDigest: Uint8Array;
  };
}

/** The TPMS_ATTEST members before the `attested` union (Part 2 §10.12.12). **Unverified.** */
export interface UnverifiedAttestHeader {
  readonly magic: number;
  readonly qualifiedSigner: Uint8Array;
  readonly extraData: Uint8Array;
  readonly clockInfo: UnverifiedClockInfo;
  readonly firmwareVersion: bigint;
}

/**
 * Start decoding a TPMS_ATTEST of one expected `type`: bound the size, read the header members and
 * leave `r` at the `attested` union. The magic value is returned, not checked (the verify functions
 * check it).
 */
export function readAttestHeader(
  bytes: Uint8Array,
  expected: { readonly type: number; readonly name: string; readonly wrongTypeCode: VerifierErrorCode },
): { readonly r: TpmReader; readonly header: UnverifiedAttestHeader } {
  // SECURITY: bounds the work done on hostile input before parsing starts (TPM2B_ATTEST limit).
  if (bytes.byteLength > MAX_ATTEST_BYTES) {
    throw new VerifierError('TPM_LENGTH_EXCEEDED', `TPMS_ATTEST: ${bytes.byteLength} bytes exceeds ${MAX_ATTEST_BYTES}`);
  }
  const r = new TpmReader(bytes);
  const magic = r.u32('TPMS_ATTEST.magic');
  const type = r.u16('TPMS_ATTEST.type');
  // SECURITY: stops another attestation kind signed by the same AK (a certify taken for a quote, a
  // quote for a certify, session audit, ...) from being accepted; the `attested` union has a
  // different layout per type (TPM 2.0 Part 2 §10.12.12, TPMI_ST_ATTEST).
  if (type !== expected.type) {
    throw new VerifierError(expected.wrongTypeCode, `TPMS_ATTEST.type 0x${type.toString(16)} is not ${expected.name}`);
  }
  const qualifiedSigner = r.tpm2b(MAX_NAME_BYTES, 'TPMS_ATTEST.qualifiedSigner');
  const extraData = r.tpm2b(MAX_EXTRA_DATA_BYTES, 'TPMS_ATTEST.extraData');
  const clock = r.u64('TPMS_CLOCK_INFO.clock');
  const resetCount = r.u32('TPMS_CLOCK_INFO.resetCount');
  const restartCount = r.u32('TPMS_CLOCK_INFO.restartCount');
  const safe = r.u8('TPMS_CLOCK_INFO.safe');
  // SECURITY: stops non-canonical encodings (two byte strings decoding to the same value) of
  // TPMI_YES_NO (Part 2 §9.2).
  if (safe > 1) {
    throw new VerifierError('TPM_MALFORMED', 'TPMS_CLOCK_INFO.safe is not TPMI_YES_NO');
  }
  const firmwareVersion = r.u64('TPMS_ATTEST.firmwareVersion');
  return { r, header: { magic, qualifiedSigner, extraData, clockInfo: { clock, resetCount, restartCount, safe: safe === 1 }, firmwareVersion } };
}

/**
 * Decode a marshalled TPMS_ATTEST holding a quote (TPM 2.0 Part 2 §10.12.12). Every length is
 * checked before it is used, and the structure must fill `bytes` exactly. The magic value is
 * returned, not checked (`verifyQuote` checks it).
 *
 * @throws VerifierError `TPM_TRUNCATED`, `TPM_LENGTH_EXCEEDED`, `TPM_TRAILING_BYTES`,
 *   `TPM_MALFORMED`, `QUOTE_WRONG_TYPE`.
 */
export function decodeUnverifiedAttest(bytes: Uint8Array): UnverifiedAttest {
  const { r, header } = readAttestHeader(bytes, { type: TPM_ST_ATTEST_QUOTE, name: 'TPM_ST_ATTEST_QUOTE', wrongTypeCode: 'QUOTE_WRONG_TYPE' });
  const pcrSelect = readPcrSelectionList(r, 'TPMS_QUOTE_INFO.pcrSelect');
  const pcrDigest = r.tpm2b(MAX_DIGEST_BYTES, 'TPMS_QUOTE_INFO.pcrDigest');
  r.end('TPMS_ATTEST');
  return { ...header, type: TPM_ST_ATTEST_QUOTE, attested: { pcrSelect, pcrDigest } };
}
