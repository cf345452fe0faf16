import { TpmError } from '../../errors.js';
import { ESYS_TR, type EsysContext } from './esys-context.js';
import { TpmReader } from './tpm-bytes.js';
import { bankAlg, bankDigestSize, pcrSelectionBytes, type PcrBank } from './tpm-alg.js';

const MAX_PCR_READ_ROUNDS = 24;

/** PCR indices selected for `hashAlg` in TPML_PCR_SELECTION wire bytes. */
function selectedIndices(wire: Uint8Array, hashAlg: number): number[] {
  const r = new TpmReader(wire, 'TPML_PCR_SELECTION');
  const count = r.u32();
  // SECURITY: a selection list longer than HASH_COUNT is malformed (TPM 2.0 Part 2, 10.9.7)
  if (count > 16) throw new TpmError('TPM_BAD_RESPONSE', 'TPML_PCR_SELECTION: too many entries');
  const out: number[] = [];
  for (let i = 0; i < count; i++) {
    const alg = r.u16();
    const select = r.bytes(r.u8());
    if (alg !== hashAlg) continue;
    for (let b = 0; b < select.length * 8; b++) if ((select[b >> 3]! >> (b & 7)) & 1) out.push(b);
  }
  r.end();
  return out;
}

/** Read PCRs of one bank, in the order of `indices` (already validated). */
export async function readPcrBank(esys: EsysContext, bank: PcrBank, indices: readonly number[]): Promise<Uint8Array[]> {
  const size = bankDigestSize(bank);
  const values = new Map<number, Uint8Array>();
  let pending = [...indices].sort((a, b) => a - b);
  // TPM2_PCR_Read returns at most 8 digests per call (TPML_DIGEST): ask again for the rest.
  for (let round = 0; pending.length > 0; round++) {
    if (round >= MAX_PCR_READ_ROUNDS) throw new TpmError('TPM_BAD_RESPONSE', 'PCR_Read made no progress');
    const selOut: unknown[] = [null];
    const digests: unknown[] = [null];
    await esys.call('Esys_PCR_Read', [
      ESYS_TR.NONE,
      ESYS_TR.NONE,
      ESYS_TR.NONE,
      esys.in('TPML_PCR_SELECTION', pcrSelectionBytes(bank, pending)),
      [0],
      selOut,
      digests,
    ]);
    let returned: number[];
    try {
      returned = selectedIndices(esys.out('TPML_PCR_SELECTION', selOut[0]), bankAlg(bank));
    } catch (err) {
      esys.free(digests[0]);
      throw err;
    }
    const r = new TpmReader(esys.out('TPML_DIGEST', digests[0]), 'TPML_DIGEST');
    const count = r.u32();
    if (returned.length === 0) throw new TpmError('TPM_COMMAND_FAILED', `PCR bank ${bank} is not allocated on this TPM`);
    // SECURITY: each digest must belong to a PCR we asked for, one per returned index (TPM 2.0 Part 3, 22.4 PCR_Read)
    if (count !== returned.length || returned.some((i) => !pending.includes(i))) {
      throw new TpmError('TPM_BAD_RESPONSE', 'PCR_Read returned PCRs that were not asked for');
    }
    for (const index of returned) {
      const d = r.tpm2b(64);
      if (d.length !== size) throw new TpmError('TPM_BAD_RESPONSE', 'PCR digest has the wrong size');
      values.set(index, new Uint8Array(d));
    }
    r.end();
    pending = pending.filter((i) => !values.has(i));
  }
  return indices.map((i) => values.get(i)!);
}
