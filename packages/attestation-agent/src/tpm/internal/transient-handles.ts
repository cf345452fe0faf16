import { TpmError } from '../../errors.js';
import { ESYS_TR, type EsysContext } from './esys-context.js';
import { TpmReader } from './tpm-bytes.js';

const TPM_CAP_HANDLES = 0x00000001;
const TRANSIENT_FIRST = 0x80000000;
const MAX_HANDLES_PER_CALL = 64;

/** Handles of the transient objects loaded in the TPM (TPM2_GetCapability(TPM_CAP_HANDLES)). */
export async function listTransientHandles(esys: EsysContext): Promise<number[]> {
  const handles: number[] = [];
  let next = TRANSIENT_FIRST;
  for (;;) {
    const more = [0];
    const data: unknown[] = [null];
    await esys.call('Esys_GetCapability', [
      ESYS_TR.NONE,
      ESYS_TR.NONE,
      ESYS_TR.NONE,
      TPM_CAP_HANDLES,
      next,
      MAX_HANDLES_PER_CALL,
      more,
      data,
    ]);
    const r = new TpmReader(esys.out('TPMS_CAPABILITY_DATA', data[0]), 'TPMS_CAPABILITY_DATA');
    r.u32();
    const count = r.u32();
    if (count > MAX_HANDLES_PER_CALL) throw new TpmError('TPM_BAD_RESPONSE', 'too many handles');
    let last = next;
    for (let i = 0; i < count; i++) {
      last = r.u32();
      if (last >>> 24 === 0x80) handles.push(last);
    }
    if (more[0] !== 1 || count === 0 || last >>> 24 !== 0x80) return handles;
    next = last + 1;
  }
}
