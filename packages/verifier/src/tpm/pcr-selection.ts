import { VerifierError } from '../errors.js';
import type { TpmReader } from './quote/tpm-reader.js';

/** One TPMS_PCR_SELECTION: a hash algorithm (TPM_ALG_ID) and the PCR indices selected in it. */
export interface PcrSelection {
  readonly hashAlg: number;
  /** Selected PCR indices, ascending (the order in which the TPM concatenates them). */
  readonly pcrs: readonly number[];
}

/** Most TPMS_PCR_SELECTION entries accepted in a TPML_PCR_SELECTION (TPM 2.0 Part 2 §10.9.7, HASH_COUNT). */
export const MAX_PCR_SELECTIONS = 16;
/** Largest sizeofSelect accepted: 4 bytes, i.e. up to 32 PCRs (PCR_SELECT_MAX of any real TPM). */
export const MAX_SIZEOF_SELECT = 4;

/**
 * PCR indices selected by a pcrSelect bitmap (TPM 2.0 Part 2 §10.6.2: bit `i % 8` of byte
 * `floor(i / 8)` selects PCR `i`), ascending.
 */
export function pcrSelectBitmapToIndices(bitmap: Uint8Array): number[] {
  const out: number[] = [];
  for (let byte = 0; byte < bitmap.length; byte++) {
    const b = bitmap[byte] ?? 0;
    for (let bit = 0; bit < 8; bit++) {
      if ((b >> bit) & 1) out.push(byte * 8 + bit);
    }
  }
  return out;
}

/**
 * The pcrSelect bitmap of `sizeofSelect` bytes (default 3, PCR_SELECT_MIN for 24 PCRs) that selects
 * `indices`. Throws TypeError for an index that does not fit or appears twice (programmer error).
 */
export function pcrIndicesToSelectBitmap(indices: Iterable<number>, sizeofSelect = 3): Uint8Array {
  if (!Number.isInteger(sizeofSelect) || sizeofSelect < 0 || sizeofSelect > MAX_SIZEOF_SELECT) {
    throw new TypeError(`sizeofSelect must be an integer in 0..${MAX_SIZEOF_SELECT}`);
  }
  const out = new Uint8Array(sizeofSelect);
  for (const i of indices) {
    if (!Number.isInteger(i) || i < 0 || i >= sizeofSelect * 8) {
      throw new TypeError(`PCR index ${String(i)} does not fit a ${sizeofSelect}-byte selection`);
    }
    const byte = i >> 3;
    const mask = 1 << (i & 7);
    if (((out[byte] ?? 0) & mask) !== 0) throw new TypeError(`PCR index ${i} appears twice`);
    out[byte] = (out[byte] ?? 0) | mask;
  }
  return out;
}

/** Read a TPML_PCR_SELECTION (TPM 2.0 Part 2 §10.9.7) from a TPM-marshalled buffer. */
export function readPcrSelectionList(r: TpmReader, what: string): PcrSelection[] {
  const count = r.u32(`${what}.count`);
  // SECURITY: stops a hostile count from driving a huge loop or allocation (Part 2 §10.9.7, HASH_COUNT).
  if (count > MAX_PCR_SELECTIONS) {
    throw new VerifierError('TPM_LENGTH_EXCEEDED', `${what}: count ${count} exceeds ${MAX_PCR_SELECTIONS}`);
  }
  const out: PcrSelection[] = [];
  for (let i = 0; i < count; i++) {
    const hashAlg = r.u16(`${what}[${i}].hash`);
    const sizeofSelect = r.u8(`${what}[${i}].sizeofSelect`);
    // SECURITY: stops a selection bitmap larger than any TPM's PCR_SELECT_MAX (Part 2 §10.6.2).
    if (sizeofSelect > MAX_SIZEOF_SELECT) {
      throw new VerifierError('TPM_LENGTH_EXCEEDED', `${what}[${i}]: sizeofSelect ${sizeofSelect} exceeds ${MAX_SIZEOF_SELECT}`);
    }
    const bitmap = r.bytes(sizeofSelect, `${what}[${i}].pcrSelect`);
    out.push({ hashAlg, pcrs: pcrSelectBitmapToIndices(bitmap) });
  }
  return out;
}
