import { createHash, timingSafeEqual } from 'node:crypto';
import { TpmError } from '../errors.js';
import type { TpmDevice, TpmKey } from '../tpm/device.js';
import { decodeUnverifiedQuoteAttest, parseTpmtSignature } from '../tpm/quote-format.js';
import { tpm2bPublicToSpkiDer } from '../tpm/public-area.js';
import { hashNameOfAlg, TPM_ALG } from '../tpm/internal/tpm-alg.js';

/** Trustee's TPM evidence (`tee: "tpm"`), field names as Trustee's verifier reads them. */
export interface TpmEvidence {
  /** Standard base64 of the AK's DER SubjectPublicKeyInfo. */
  ak_public: string;
  tpm_quote: {
    /** Standard base64 of TPMS_ATTEST. */
    message: string;
    /** Standard base64 of the marshalled TPMT_SIGNATURE. */
    signature: string;
    /** Lower-case hex of SHA-256 PCRs 0..23, in order. */
    pcrs: string[];
  };
}

/** The PCR the init-data digest is extended into (guest-components `attester/src/tpm`). */
export const INIT_DATA_PCR = 8;

const ALL_PCRS = Array.from({ length: 24 }, (_, i) => i);
/** ak_public per key: the SPKI conversion costs more than a software quote, and keys are immutable. */
const spkiCache = new WeakMap<TpmKey, string>();
const ATTEMPTS = 2;

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && timingSafeEqual(a, b);
}

/**
 * Quote SHA-256 PCRs 0-23 with `reportData32` as qualifying data and package the result the way
 * Trustee's TPM verifier expects it.
 *
 * The PCR values reported are the ones the quote covers: PCRs are read, then quoted, and the quote's
 * pcrDigest must equal SHA-256 over the values read. If a PCR changed in between (an extend raced
 * the quote), the whole sequence is retried once; a second mismatch is TPM_PCR_CHANGED.
 * It also checks that the TPM put `reportData32` into extraData and quoted exactly the selection
 * asked for. It does not verify the signature (the verifier does).
 *
 * `pcrsReadEarlier` ({@link readEvidencePcrs}, started e.g. while the KBS answers /auth) stands in
 * for the first read; it is held to the same pcrDigest check, and a stale one counts as no attempt.
 */
export async function collectTpmEvidence(tpm: TpmDevice, ak: TpmKey, reportData32: Uint8Array, opts: { pcrsReadEarlier?: Promise<Uint8Array[]> } = {}): Promise<TpmEvidence> {
  if (!(reportData32 instanceof Uint8Array) || reportData32.length !== 32) {
    throw new TypeError('reportData32 must be 32 bytes (report_data truncated as Trustee does)');
  }
  let akPublic = spkiCache.get(ak);
  if (akPublic === undefined) {
    akPublic = Buffer.from(tpm2bPublicToSpkiDer(ak.publicArea)).toString('base64');
    spkiCache.set(ak, akPublic);
  }
  let earlier = opts.pcrsReadEarlier;
  for (let attempt = 1; ; attempt++) {
    const early = earlier !== undefined;
    const pcrs = early ? await earlier!.catch(() => readEvidencePcrs(tpm)) : await readEvidencePcrs(tpm);
    earlier = undefined;
    const quote = await tpm.quote(ak, 'sha256', ALL_PCRS, reportData32);
    const attest = decodeUnverifiedQuoteAttest(quote.message);
    const sig = parseTpmtSignature(quote.signature);
    const sel = attest.pcrSelections;
    // SECURITY: evidence must cover exactly SHA-256 PCRs 0-23, or the reported values would not be what was signed (TPM 2.0 Part 3, 18.4)
    if (sel.length !== 1 || sel[0]!.hashAlg !== TPM_ALG.SHA256 || sel[0]!.indices.join() !== ALL_PCRS.join()) {
      throw new TpmError('TPM_BAD_RESPONSE', 'quote does not cover SHA-256 PCRs 0-23');
    }
    // SECURITY: the quote must be bound to this request's report data, or it could be replayed (PROTOCOL-NOTES 1, binding)
    if (!sameBytes(attest.extraData, reportData32)) {
      throw new TpmError('TPM_BAD_RESPONSE', 'quote extraData is not the report data');
    }
    const hashName = hashNameOfAlg(sig.hashAlg);
    if (hashName === undefined) throw new TpmError('TPM_BAD_RESPONSE', 'quote signature uses an unknown hash');
    const h = createHash(hashName);
    for (const v of pcrs) h.update(v);
    if (sameBytes(h.digest(), attest.pcrDigest)) {
      return {
        ak_public: akPublic,
        tpm_quote: {
          message: Buffer.from(quote.message).toString('base64'),
          signature: Buffer.from(quote.signature).toString('base64'),
          pcrs: pcrs.map((v) => Buffer.from(v).toString('hex')),
        },
      };
    }
    // SECURITY: never report PCR values that differ from those the quote signed (go-attestation attest.Quote / PCR read race)
    if (early) attempt--;
    else if (attempt >= ATTEMPTS) throw new TpmError('TPM_PCR_CHANGED', 'PCRs changed between reading and quoting, twice');
  }
}

/** The PCR values evidence reports (SHA-256 PCRs 0-23), read now. */
export function readEvidencePcrs(tpm: TpmDevice): Promise<Uint8Array[]> {
  return tpm.readPcrs('sha256', ALL_PCRS);
}

/**
 * Bind init-data into the TPM as guest-components does: extend SHA-256 PCR 8 with its digest. On a
 * fresh TPM the verifier then expects PCR8 = SHA-256(0x00*32 || digest).
 */
export async function bindInitData(tpm: TpmDevice, digest32: Uint8Array): Promise<void> {
  if (!(digest32 instanceof Uint8Array) || digest32.length !== 32) throw new TypeError('digest32 must be 32 bytes');
  await tpm.extendPcr(INIT_DATA_PCR, [{ alg: 'sha256', digest: digest32 }]);
}
