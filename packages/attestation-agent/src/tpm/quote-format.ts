import { TpmError } from '../errors.js';
import { TpmReader, TpmWriter } from './internal/tpm-bytes.js';
import { TPM_ALG, TPM_GENERATED_VALUE, TPM_ST_ATTEST_QUOTE } from './internal/tpm-alg.js';

/** One TPMS_PCR_SELECTION (TPM 2.0 Part 2, 10.6.2). */
export interface PcrSelection {
  readonly hashAlg: number;
  /** PCR indices selected, ascending. */
  readonly indices: readonly number[];
}

/** Fields of a TPMS_ATTEST of type TPM_ST_ATTEST_QUOTE (TPM 2.0 Part 2, 10.12.12). */
export interface QuoteAttest {
  readonly qualifiedSigner: Uint8Array;
  readonly extraData: Uint8Array;
  readonly clock: bigint;
  readonly resetCount: number;
  readonly restartCount: number;
  readonly safe: boolean;
  readonly firmwareVersion: bigint;
  readonly pcrSelections: readonly PcrSelection[];
  readonly pcrDigest: Uint8Array;
}

/** A TPMT_SIGNATURE of an RSASSA or ECDSA key (TPM 2.0 Part 2, 11.3.4). */
export type TpmSignature =
  | { readonly sigAlg: 'rsassa'; readonly hashAlg: number; readonly sig: Uint8Array }
  | { readonly sigAlg: 'ecdsa'; readonly hashAlg: number; readonly r: Uint8Array; readonly s: Uint8Array };

const MAX_PCR_SELECTIONS = 16;

/**
 * Parse TPMS_ATTEST bytes of a quote without checking any signature: the caller must verify the
 * signature before trusting a field.
 */
export function decodeUnverifiedQuoteAttest(message: Uint8Array): QuoteAttest {
  const r = new TpmReader(message, 'TPMS_ATTEST');
  // SECURITY: only structures the TPM generated start with TPM_GENERATED_VALUE (TPM 2.0 Part 2, 6.2)
  if (r.u32() !== TPM_GENERATED_VALUE) throw new TpmError('TPM_BAD_RESPONSE', 'TPMS_ATTEST: bad magic');
  // SECURITY: a certify or other attestation must not be taken for a quote (TPM 2.0 Part 2, 10.12.10)
  if (r.u16() !== TPM_ST_ATTEST_QUOTE) throw new TpmError('TPM_BAD_RESPONSE', 'TPMS_ATTEST: not a quote');
  const qualifiedSigner = r.tpm2b(2 + 64);
  const extraData = r.tpm2b(64);
  const clock = r.u64();
  const resetCount = r.u32();
  const restartCount = r.u32();
  const safe = r.u8() === 1;
  const firmwareVersion = r.u64();
  const count = r.u32();
  // SECURITY: a huge selection count must not drive allocation (TPM 2.0 Part 2, 10.9.7 HASH_COUNT)
  if (count > MAX_PCR_SELECTIONS) throw new TpmError('TPM_BAD_RESPONSE', 'TPMS_ATTEST: too many PCR selections');
  const pcrSelections: PcrSelection[] = [];
  for (let i = 0; i < count; i++) {
    const hashAlg = r.u16();
    const size = r.u8();
    // SECURITY: sizeofSelect is bounded by PCR_SELECT_MAX (TPM 2.0 Part 2, 10.6.2)
    if (size > 4) throw new TpmError('TPM_BAD_RESPONSE', 'TPMS_ATTEST: PCR select too large');
    const select = r.bytes(size);
    const indices: number[] = [];
    for (let b = 0; b < size * 8; b++) if ((select[b >> 3]! >> (b & 7)) & 1) indices.push(b);
    pcrSelections.push({ hashAlg, indices });
  }
  const pcrDigest = r.tpm2b(64);
  r.end();
  return {
    qualifiedSigner,
    extraData,
    clock,
    resetCount,
    restartCount,
    safe,
    firmwareVersion,
    pcrSelections,
    pcrDigest,
  };
}

/** Encode a quote's TPMS_ATTEST (used by the software TPM). */
export function encodeQuoteAttest(a: QuoteAttest): Uint8Array {
  const w = new TpmWriter()
    .u32(TPM_GENERATED_VALUE)
    .u16(TPM_ST_ATTEST_QUOTE)
    .tpm2b(a.qualifiedSigner)
    .tpm2b(a.extraData)
    .u64(a.clock)
    .u32(a.resetCount)
    .u32(a.restartCount)
    .u8(a.safe ? 1 : 0)
    .u64(a.firmwareVersion)
    .u32(a.pcrSelections.length);
  for (const sel of a.pcrSelections) {
    const select = new Uint8Array(3);
    for (const i of sel.indices) select[i >> 3]! |= 1 << (i & 7);
    w.u16(sel.hashAlg).u8(3).bytes(select);
  }
  return w.tpm2b(a.pcrDigest).finish();
}

/** Parse TPMT_SIGNATURE bytes (RSASSA or ECDSA only). */
export function parseTpmtSignature(bytes: Uint8Array): TpmSignature {
  const r = new TpmReader(bytes, 'TPMT_SIGNATURE');
  const sigAlg = r.u16();
  const hashAlg = r.u16();
  let out: TpmSignature;
  if (sigAlg === TPM_ALG.RSASSA) {
    out = { sigAlg: 'rsassa', hashAlg, sig: r.tpm2b(512) };
  } else if (sigAlg === TPM_ALG.ECDSA) {
    const rr = r.tpm2b(66);
    const ss = r.tpm2b(66);
    out = { sigAlg: 'ecdsa', hashAlg, r: rr, s: ss };
  } else {
    // SECURITY: only the schemes Keyhold's AKs use are accepted (TPM 2.0 Part 2, 11.3.4)
    throw new TpmError('TPM_BAD_RESPONSE', `TPMT_SIGNATURE: unsupported scheme 0x${sigAlg.toString(16)}`);
  }
  r.end();
  return out;
}

/** Encode a TPMT_SIGNATURE (used by the software TPM). */
export function encodeTpmtSignature(sig: TpmSignature): Uint8Array {
  if (sig.sigAlg === 'rsassa') return new TpmWriter().u16(TPM_ALG.RSASSA).u16(sig.hashAlg).tpm2b(sig.sig).finish();
  return new TpmWriter().u16(TPM_ALG.ECDSA).u16(sig.hashAlg).tpm2b(sig.r).tpm2b(sig.s).finish();
}
