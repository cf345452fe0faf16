import { VerifierError } from '../errors.js';
import { MAX_PCR_SELECTIONS, MAX_SIZEOF_SELECT, pcrSelectBitmapToIndices } from './pcr-selection.js';

/**
 * The PCR file `tpm2_quote -o` writes (tpm2-tools 4.x/5.x, "serialized" format): raw C structs in
 * the host's byte order (little-endian on every platform tpm2-tools targets):
 *   TPML_PCR_SELECTION  { UINT32 count; TPMS_PCR_SELECTION[16] { UINT16 hash; UINT8 sizeofSelect;
 *                         BYTE pcrSelect[4]; 1 padding byte } }                         = 132 bytes
 *   UINT32 n; then n × TPML_DIGEST { UINT32 count; TPM2B_DIGEST[8] { UINT16 size; BYTE[64] } } = 532 bytes each
 * The digests follow the selection order (entry by entry, PCR index ascending), eight per list.
 */
const SELECTION_ENTRY_BYTES = 8;
const SELECTION_LIST_BYTES = 4 + MAX_PCR_SELECTIONS * SELECTION_ENTRY_BYTES;
const DIGESTS_PER_LIST = 8;
const DIGEST_SLOT_BYTES = 2 + 64;
const DIGEST_LIST_BYTES = 4 + DIGESTS_PER_LIST * DIGEST_SLOT_BYTES;
/** Most TPML_DIGEST lists accepted: 16 banks × 32 PCRs / 8. */
const MAX_DIGEST_LISTS = 64;

/** One bank's values from a tpm2-tools PCR file. **Unverified** until checked against a quote. */
export interface Tpm2ToolsPcrBank {
  /** TPM_ALG_ID of the bank. */
  readonly hashAlg: number;
  /** PCR index → value, ascending index order. */
  readonly values: ReadonlyMap<number, Uint8Array>;
}

/**
 * Decode a tpm2-tools PCR file (see above). The file must have exactly the length its counts
 * imply, and the number of digests must equal the number of selected PCRs.
 *
 * @throws VerifierError `TPM_TRUNCATED`, `TPM_LENGTH_EXCEEDED`, `TPM_TRAILING_BYTES`, `TPM_MALFORMED`.
 */
export function decodeUnverifiedTpm2ToolsPcrFile(bytes: Uint8Array): Tpm2ToolsPcrBank[] {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  // SECURITY: stops reads past the end of a truncated file (fixed-size header).
  if (bytes.byteLength < SELECTION_LIST_BYTES + 4) {
    throw new VerifierError('TPM_TRUNCATED', `tpm2-tools PCR file: ${bytes.byteLength} bytes is shorter than its header`);
  }
  const selCount = view.getUint32(0, true);
  // SECURITY: stops a count larger than the fixed array it indexes (out-of-bounds read).
  if (selCount > MAX_PCR_SELECTIONS) {
    throw new VerifierError('TPM_LENGTH_EXCEEDED', `tpm2-tools PCR file: selection count ${selCount} exceeds ${MAX_PCR_SELECTIONS}`);
  }
  const listCount = view.getUint32(SELECTION_LIST_BYTES, true);
  // SECURITY: stops a hostile list count from driving a huge loop (checked before reading lists).
  if (listCount > MAX_DIGEST_LISTS) {
    throw new VerifierError('TPM_LENGTH_EXCEEDED', `tpm2-tools PCR file: digest list count ${listCount} exceeds ${MAX_DIGEST_LISTS}`);
  }
  const expectedBytes = SELECTION_LIST_BYTES + 4 + listCount * DIGEST_LIST_BYTES;
  // SECURITY: stops truncated files and appended data (the file must be exactly what its counts say).
  if (bytes.byteLength < expectedBytes) {
    throw new VerifierError('TPM_TRUNCATED', `tpm2-tools PCR file: ${bytes.byteLength} bytes, counts imply ${expectedBytes}`);
  }
  if (bytes.byteLength > expectedBytes) {
    throw new VerifierError('TPM_TRAILING_BYTES', `tpm2-tools PCR file: ${bytes.byteLength - expectedBytes} trailing bytes`);
  }

  const digests: Uint8Array[] = [];
  for (let l = 0; l < listCount; l++) {
    const base = SELECTION_LIST_BYTES + 4 + l * DIGEST_LIST_BYTES;
    const count = view.getUint32(base, true);
    // SECURITY: stops a count larger than the fixed TPML_DIGEST array (out-of-bounds read).
    if (count > DIGESTS_PER_LIST) {
      throw new VerifierError('TPM_LENGTH_EXCEEDED', `tpm2-tools PCR file: digest list ${l} count ${count} exceeds ${DIGESTS_PER_LIST}`);
    }
    for (let d = 0; d < count; d++) {
      const slot = base + 4 + d * DIGEST_SLOT_BYTES;
      const size = view.getUint16(slot, true);
      // SECURITY: stops a digest size larger than its 64-byte buffer (out-of-bounds read).
      if (size > DIGEST_SLOT_BYTES - 2) {
        throw new VerifierError('TPM_LENGTH_EXCEEDED', `tpm2-tools PCR file: digest size ${size} exceeds 64`);
      }
      digests.push(bytes.slice(slot + 2, slot + 2 + size));
    }
  }

  const banks: Tpm2ToolsPcrBank[] = [];
  let next = 0;
  for (let i = 0; i < selCount; i++) {
    const base = 4 + i * SELECTION_ENTRY_BYTES;
    const hashAlg = view.getUint16(base, true);
    const sizeofSelect = view.getUint8(base + 2);
    // SECURITY: stops a bitmap size larger than the fixed 4-byte pcrSelect array.
    if (sizeofSelect > MAX_SIZEOF_SELECT) {
      throw new VerifierError('TPM_LENGTH_EXCEEDED', `tpm2-tools PCR file: sizeofSelect ${sizeofSelect} exceeds ${MAX_SIZEOF_SELECT}`);
    }
    const values = new Map<number, Uint8Array>();
    for (const pcr of pcrSelectBitmapToIndices(bytes.subarray(base + 3, base + 3 + sizeofSelect))) {
      const value = digests[next++];
      // SECURITY: stops PCRs being paired with the wrong values when the digest count is short.
      if (value === undefined) {
        throw new VerifierError('TPM_MALFORMED', 'tpm2-tools PCR file: fewer digests than selected PCRs');
      }
      values.set(pcr, value);
    }
    banks.push({ hashAlg, values });
  }
  // SECURITY: stops unpaired digests from being silently dropped (selection and values disagree).
  if (next !== digests.length) {
    throw new VerifierError('TPM_MALFORMED', 'tpm2-tools PCR file: more digests than selected PCRs');
  }
  return banks;
}
