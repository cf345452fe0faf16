import { TpmError } from '../../errors.js';
import { ESYS_TR, isHandleError, type EsysContext } from './esys-context.js';
import { TpmReader } from './tpm-bytes.js';

const TPM_CAP_TPM_PROPERTIES = 0x00000006;
/** TPM_PT_NV_BUFFER_MAX = PT_FIXED + 44 (TPM 2.0 Part 2, 6.13). */
const TPM_PT_NV_BUFFER_MAX = 0x100 + 44;
/** TPMA_NV bits (TPM 2.0 Part 2, 13.4). */
const TPMA_NV_OWNERREAD = 1 << 17;
const TPMA_NV_AUTHREAD = 1 << 18;
/** Upper bound on an NV index we read (EK certificates are a few KiB; MAX_NV_INDEX_SIZE is 2048 on most TPMs). */
const MAX_NV_READ_BYTES = 16 * 1024;

async function nvBufferMax(esys: EsysContext): Promise<number> {
  const more = [0];
  const data: unknown[] = [null];
  await esys.call('Esys_GetCapability', [
    ESYS_TR.NONE,
    ESYS_TR.NONE,
    ESYS_TR.NONE,
    TPM_CAP_TPM_PROPERTIES,
    TPM_PT_NV_BUFFER_MAX,
    1,
    more,
    data,
  ]);
  const r = new TpmReader(esys.out('TPMS_CAPABILITY_DATA', data[0]), 'TPMS_CAPABILITY_DATA');
  r.u32();
  const count = r.u32();
  if (count >= 1 && r.u32() === TPM_PT_NV_BUFFER_MAX) {
    const v = r.u32();
    if (v > 0 && v <= 4096) return v;
  }
  return 512;
}

/**
 * Length of a DER value at the start of `data` (tag, length, contents), or undefined when the bytes
 * do not start with a definite-length DER header that fits.
 */
export function derLength(data: Uint8Array): number | undefined {
  if (data.length < 2) return undefined;
  const first = data[1]!;
  if (first < 0x80) return 2 + first <= data.length ? 2 + first : undefined;
  const n = first & 0x7f;
  if (n === 0 || n > 3 || 2 + n > data.length) return undefined;
  let len = 0;
  for (let i = 0; i < n; i++) len = len * 256 + data[2 + i]!;
  const total = 2 + n + len;
  return total <= data.length ? total : undefined;
}

/**
 * NV indices holding certificates are often larger than the DER they carry and padded with 0xFF or
 * 0x00. Strip that padding, and only that: anything else after the DER is kept.
 */
export function stripDerPadding(data: Uint8Array): Uint8Array {
  if (data[0] !== 0x30) return data;
  const len = derLength(data);
  if (len === undefined) return data;
  for (let i = len; i < data.length; i++) if (data[i] !== 0xff && data[i] !== 0x00) return data;
  return data.subarray(0, len);
}

/** Read a whole NV index in chunks of at most TPM_PT_NV_BUFFER_MAX bytes. */
export async function readNvIndex(esys: EsysContext, index: number): Promise<Uint8Array> {
  const tr = [0];
  const rc = await esys.callRc('Esys_TR_FromTPMPublic', [index, ESYS_TR.NONE, ESYS_TR.NONE, ESYS_TR.NONE, tr]);
  if (rc !== 0) {
    throw isHandleError(rc)
      ? new TpmError('TPM_NV_NOT_FOUND', `NV index 0x${index.toString(16)} is not defined`, { rc })
      : esys.error('Esys_TR_FromTPMPublic', rc);
  }
  try {
    const pubOut: unknown[] = [null];
    await esys.call('Esys_NV_ReadPublic', [tr[0], ESYS_TR.NONE, ESYS_TR.NONE, ESYS_TR.NONE, pubOut, null]);
    const r = new TpmReader(esys.out('TPM2B_NV_PUBLIC', pubOut[0]), 'TPM2B_NV_PUBLIC');
    r.u16();
    r.u32(); // nvIndex
    r.u16(); // nameAlg
    const attributes = r.u32();
    r.tpm2b(64); // authPolicy
    const size = r.u16();
    // SECURITY: an index claiming to be huge must not drive allocation (TPM 2.0 Part 2, 13.5 dataSize)
    if (size > MAX_NV_READ_BYTES) throw new TpmError('TPM_BAD_RESPONSE', 'NV index is too large');
    let auth: number;
    if (attributes & TPMA_NV_AUTHREAD) auth = tr[0]!;
    else if (attributes & TPMA_NV_OWNERREAD) auth = ESYS_TR.RH_OWNER;
    else throw new TpmError('TPM_NV_NOT_FOUND', 'NV index is not readable with index or owner authorisation');
    const chunkMax = await nvBufferMax(esys);
    const out = new Uint8Array(size);
    for (let offset = 0; offset < size; ) {
      const want = Math.min(chunkMax, size - offset);
      const data: unknown[] = [null];
      await esys.call('Esys_NV_Read', [auth, tr[0], ESYS_TR.PASSWORD, ESYS_TR.NONE, ESYS_TR.NONE, want, offset, data]);
      const chunk = new TpmReader(esys.out('TPM2B_MAX_NV_BUFFER', data[0]), 'TPM2B_MAX_NV_BUFFER').tpm2b(4096);
      // SECURITY: a short or long chunk would misplace the certificate's bytes (TPM 2.0 Part 3, 31.13 NV_Read)
      if (chunk.length !== want) throw new TpmError('TPM_BAD_RESPONSE', 'NV_Read returned the wrong size');
      out.set(chunk, offset);
      offset += want;
    }
    return stripDerPadding(out);
  } finally {
    await esys.trClose(tr[0]!);
  }
}
