/**
 * koffi bindings to tpm2-tss (ESAPI, TCTI loader, marshalling, RC decoding).
 *
 * The big TSS C structures are never mirrored in JavaScript: inputs are built as TPM wire bytes and
 * turned into the C structure by `Tss2_MU_<TYPE>_Unmarshal` into an opaque buffer that ESAPI reads
 * by pointer; ESAPI outputs (`TYPE**`, allocated by ESAPI) are turned back into wire bytes with
 * `Tss2_MU_<TYPE>_Marshal` and then released with `Esys_Free`.
 */
import { createRequire } from 'node:module';
import type * as Koffi from 'koffi';
import { TpmError } from '../../errors.js';
import { markPhase } from '../../phase-channel.js';
import { koffiEntry } from './koffi-entry.js';

type Fn = ReturnType<Koffi.LibraryHandle['func']>;

/** Structures we move across the boundary. */
export type MuType =
  | 'TPM2B_DIGEST'
  | 'TPM2B_DATA'
  | 'TPM2B_PUBLIC'
  | 'TPM2B_PRIVATE'
  | 'TPM2B_SENSITIVE_CREATE'
  | 'TPM2B_ATTEST'
  | 'TPM2B_ID_OBJECT'
  | 'TPM2B_ENCRYPTED_SECRET'
  | 'TPM2B_MAX_NV_BUFFER'
  | 'TPM2B_NV_PUBLIC'
  | 'TPM2B_NAME'
  | 'TPML_PCR_SELECTION'
  | 'TPML_DIGEST'
  | 'TPML_DIGEST_VALUES'
  | 'TPMT_SIG_SCHEME'
  | 'TPMT_SYM_DEF'
  | 'TPMT_SIGNATURE'
  | 'TPMS_CAPABILITY_DATA'
  | 'TPM2B_PUBLIC_KEY_RSA'
  | 'TPMT_RSA_DECRYPT'
  | 'TPM2B_ECC_POINT'
  | 'TPMS_CONTEXT';

const MU_TYPES: readonly MuType[] = [
  'TPM2B_DIGEST',
  'TPM2B_DATA',
  'TPM2B_PUBLIC',
  'TPM2B_PRIVATE',
  'TPM2B_SENSITIVE_CREATE',
  'TPM2B_ATTEST',
  'TPM2B_ID_OBJECT',
  'TPM2B_ENCRYPTED_SECRET',
  'TPM2B_MAX_NV_BUFFER',
  'TPM2B_NV_PUBLIC',
  'TPM2B_NAME',
  'TPML_PCR_SELECTION',
  'TPML_DIGEST',
  'TPML_DIGEST_VALUES',
  'TPMT_SIG_SCHEME',
  'TPMT_SYM_DEF',
  'TPMT_SIGNATURE',
  'TPMS_CAPABILITY_DATA',
  'TPM2B_PUBLIC_KEY_RSA',
  'TPMT_RSA_DECRYPT',
  'TPM2B_ECC_POINT',
  'TPMS_CONTEXT',
];

/**
 * Size of the opaque buffer a C structure is unmarshalled into. The largest structure we pass in
 * (TPM2B_PUBLIC, TPML_DIGEST_VALUES) is well under 2 KiB in tpm2-tss; 8 KiB leaves room for any
 * build of the library. Outputs are marshalled into buffers of the same size.
 */
export const STRUCT_BUFFER_BYTES = 8192;

export interface TssLibrary {
  readonly tctiInit: Fn;
  readonly tctiFinalize: Fn;
  readonly esys: Record<string, Fn>;
  readonly free: Fn;
  readonly rcDecode: Fn;
  readonly marshal: Record<MuType, Fn>;
  readonly unmarshal: Record<MuType, Fn>;
}

const ESYS_PROTOTYPES = [
  'uint32_t Esys_Initialize(_Out_ void **esys, void *tcti, void *abi)',
  'void Esys_Finalize(_Inout_ void **esys)',
  'uint32_t Esys_GetRandom(void *ctx, uint32_t s1, uint32_t s2, uint32_t s3, uint16_t n, _Out_ void **out)',
  'uint32_t Esys_PCR_Read(void *ctx, uint32_t s1, uint32_t s2, uint32_t s3, void *sel, _Out_ uint32_t *counter, _Out_ void **selOut, _Out_ void **values)',
  'uint32_t Esys_PCR_Extend(void *ctx, uint32_t pcr, uint32_t s1, uint32_t s2, uint32_t s3, void *digests)',
  'uint32_t Esys_CreatePrimary(void *ctx, uint32_t hierarchy, uint32_t s1, uint32_t s2, uint32_t s3, void *inSensitive, void *inPublic, void *outsideInfo, void *creationPcr, _Out_ uint32_t *obj, _Out_ void **outPublic, void *creationData, void *creationHash, void *creationTicket)',
  'uint32_t Esys_Create(void *ctx, uint32_t parent, uint32_t s1, uint32_t s2, uint32_t s3, void *inSensitive, void *inPublic, void *outsideInfo, void *creationPcr, _Out_ void **outPrivate, _Out_ void **outPublic, void *creationData, void *creationHash, void *creationTicket)',
  'uint32_t Esys_Load(void *ctx, uint32_t parent, uint32_t s1, uint32_t s2, uint32_t s3, void *inPrivate, void *inPublic, _Out_ uint32_t *obj)',
  'uint32_t Esys_ReadPublic(void *ctx, uint32_t obj, uint32_t s1, uint32_t s2, uint32_t s3, _Out_ void **outPublic, void *name, _Out_ void **qualifiedName)',
  'uint32_t Esys_TR_FromTPMPublic(void *ctx, uint32_t tpmHandle, uint32_t s1, uint32_t s2, uint32_t s3, _Out_ uint32_t *obj)',
  'uint32_t Esys_TR_Close(void *ctx, _Inout_ uint32_t *obj)',
  'uint32_t Esys_FlushContext(void *ctx, uint32_t obj)',
  'uint32_t Esys_EvictControl(void *ctx, uint32_t auth, uint32_t obj, uint32_t s1, uint32_t s2, uint32_t s3, uint32_t persistentHandle, _Out_ uint32_t *newObj)',
  'uint32_t Esys_Quote(void *ctx, uint32_t signHandle, uint32_t s1, uint32_t s2, uint32_t s3, void *qualifyingData, void *inScheme, void *pcrSelect, _Out_ void **quoted, _Out_ void **signature)',
  'uint32_t Esys_NV_ReadPublic(void *ctx, uint32_t nvIndex, uint32_t s1, uint32_t s2, uint32_t s3, _Out_ void **nvPublic, void *nvName)',
  'uint32_t Esys_NV_Read(void *ctx, uint32_t auth, uint32_t nvIndex, uint32_t s1, uint32_t s2, uint32_t s3, uint16_t size, uint16_t offset, _Out_ void **data)',
  'uint32_t Esys_GetCapability(void *ctx, uint32_t s1, uint32_t s2, uint32_t s3, uint32_t capability, uint32_t property, uint32_t count, _Out_ uint8_t *more, _Out_ void **data)',
  'uint32_t Esys_StartAuthSession(void *ctx, uint32_t tpmKey, uint32_t bind, uint32_t s1, uint32_t s2, uint32_t s3, void *nonceCaller, uint8_t sessionType, void *symmetric, uint16_t authHash, _Out_ uint32_t *session)',
  'uint32_t Esys_PolicySecret(void *ctx, uint32_t authHandle, uint32_t policySession, uint32_t s1, uint32_t s2, uint32_t s3, void *nonceTpm, void *cpHashA, void *policyRef, int32_t expiration, void *timeout, void *ticket)',
  'uint32_t Esys_PolicyOR(void *ctx, uint32_t policySession, uint32_t s1, uint32_t s2, uint32_t s3, void *pHashList)',
  'uint32_t Esys_Certify(void *ctx, uint32_t objectHandle, uint32_t signHandle, uint32_t s1, uint32_t s2, uint32_t s3, void *qualifyingData, void *inScheme, _Out_ void **certifyInfo, _Out_ void **signature)',
  'uint32_t Esys_RSA_Decrypt(void *ctx, uint32_t keyHandle, uint32_t s1, uint32_t s2, uint32_t s3, void *cipherText, void *inScheme, void *label, _Out_ void **message)',
  'uint32_t Esys_ECDH_ZGen(void *ctx, uint32_t keyHandle, uint32_t s1, uint32_t s2, uint32_t s3, void *inPoint, _Out_ void **outPoint)',
  'uint32_t Esys_PolicyPCR(void *ctx, uint32_t policySession, uint32_t s1, uint32_t s2, uint32_t s3, void *pcrDigest, void *pcrs)',
  'uint32_t Esys_TRSess_SetAttributes(void *ctx, uint32_t session, uint8_t flags, uint8_t mask)',
  'uint32_t Esys_ContextSave(void *ctx, uint32_t saveHandle, _Out_ void **context)',
  'uint32_t Esys_ContextLoad(void *ctx, void *context, _Out_ uint32_t *loadedHandle)',
  'uint32_t Esys_ActivateCredential(void *ctx, uint32_t activateHandle, uint32_t keyHandle, uint32_t s1, uint32_t s2, uint32_t s3, void *credentialBlob, void *secret, _Out_ void **certInfo)',
];

let loaded: TssLibrary | undefined;

/** Load the tpm2-tss libraries once; TPM_UNAVAILABLE when they are not installed. */
export function loadTss(): TssLibrary {
  if (loaded !== undefined) return loaded;
  // tpm2-tss prints its own ERROR/WARNING lines for TPM error responses (including expected ones,
  // such as probing an empty persistent handle); the device layer reports every failure as a typed
  // error instead. TSS2_LOG is read at the first log call; a value set by the user is kept.
  process.env['TSS2_LOG'] ??= 'all+NONE';
  try {
    // koffi (a native addon) is loaded here, on the first TPM use, not when the CLI starts.
    const koffi = createRequire(import.meta.url)(koffiEntry()) as typeof Koffi;
    markPhase('tpm:koffi');
    const tctildr = koffi.load('libtss2-tctildr.so.0');
    const esysLib = koffi.load('libtss2-esys.so.0');
    const mu = koffi.load('libtss2-mu.so.0');
    markPhase('tpm:dlopen');
    // Each C function is bound (its prototype parsed by koffi) when first called: a command uses a
    // handful of the ~75 declared here.
    const esys = lazyRecord(ESYS_PROTOTYPES.map((proto) => [/\b(Esys_\w+)\(/.exec(proto)![1]!, () => esysLib.func(proto)]));
    const marshal = lazyRecord(MU_TYPES.map((t) => [t, () => mu.func(`uint32_t Tss2_MU_${t}_Marshal(void *src, _Out_ uint8_t *buf, size_t size, _Inout_ size_t *offset)`)]));
    const unmarshal = lazyRecord(MU_TYPES.map((t) => [t, () => mu.func(`uint32_t Tss2_MU_${t}_Unmarshal(const uint8_t *buf, size_t size, _Inout_ size_t *offset, void *dest)`)]));
    let rcDecode: Fn | undefined;
    loaded = {
      tctiInit: tctildr.func('uint32_t Tss2_TctiLdr_Initialize(const char *conf, _Out_ void **ctx)'),
      tctiFinalize: tctildr.func('void Tss2_TctiLdr_Finalize(_Inout_ void **ctx)'),
      esys,
      free: esysLib.func('void Esys_Free(void *ptr)'),
      // libtss2-rc only names error codes: loaded on the first error.
      get rcDecode() {
        return (rcDecode ??= koffi.load('libtss2-rc.so.0').func('const char *Tss2_RC_Decode(uint32_t rc)'));
      },
      marshal: marshal as Record<MuType, Fn>,
      unmarshal: unmarshal as Record<MuType, Fn>,
    };
    markPhase('tpm:bind');
    return loaded;
  } catch (err) {
    throw new TpmError('TPM_UNAVAILABLE', 'tpm2-tss libraries could not be loaded', { cause: err });
  }
}

/** A record whose members are bound on first access (then kept); a missing symbol is TPM_UNAVAILABLE. */
function lazyRecord(entries: readonly (readonly [string, () => Fn])[]): Record<string, Fn> {
  const out: Record<string, Fn> = {};
  for (const [name, make] of entries) {
    Object.defineProperty(out, name, {
      enumerable: true,
      configurable: true,
      get() {
        let fn: Fn;
        try {
          fn = make();
        } catch (err) {
          throw new TpmError('TPM_UNAVAILABLE', `the installed tpm2-tss has no usable ${name}`, { cause: err });
        }
        Object.defineProperty(out, name, { value: fn, enumerable: true });
        return fn;
      },
    });
  }
  return out;
}

export function esysFn(lib: TssLibrary, name: string): Fn {
  const fn = lib.esys[name];
  if (fn === undefined) throw new Error(`no binding for ${name}`);
  return fn;
}

/** The C structure for wire bytes, in a buffer ESAPI can read by pointer. */
export function toStruct(lib: TssLibrary, type: MuType, wire: Uint8Array): Buffer {
  const dest = Buffer.alloc(STRUCT_BUFFER_BYTES);
  const offset = [0];
  const rc = lib.unmarshal[type](wire, wire.length, offset, dest) as number;
  // SECURITY: bytes that do not unmarshal exactly (short, oversized TPM2B sizes, trailing data) never reach ESAPI (tpm2-tss MU size checks)
  if (rc !== 0 || offset[0] !== wire.length) {
    throw new TpmError('TPM_COMMAND_FAILED', `${type}: input does not unmarshal (${decodeRc(lib, rc)})`, { rc });
  }
  return dest;
}

/**
 * Wire bytes of an ESAPI-allocated structure; the structure is freed. With `secret`, the staging
 * buffer is zeroed once copied (decrypted key material must not linger in a second heap copy).
 */
export function fromEsysStruct(lib: TssLibrary, type: MuType, ptr: unknown, secret = false): Uint8Array {
  if (ptr === null || ptr === undefined) throw new TpmError('TPM_BAD_RESPONSE', `${type}: no output`);
  const buf = Buffer.alloc(STRUCT_BUFFER_BYTES);
  try {
    const offset = [0];
    const rc = lib.marshal[type](ptr, buf, buf.length, offset) as number;
    if (rc !== 0) throw new TpmError('TPM_BAD_RESPONSE', `${type}: output does not marshal`, { rc });
    return new Uint8Array(buf.subarray(0, offset[0]));
  } finally {
    if (secret) buf.fill(0);
    lib.free(ptr);
  }
}

export function decodeRc(lib: TssLibrary, rc: number): string {
  try {
    return String(lib.rcDecode(rc));
  } catch {
    return `0x${rc.toString(16)}`;
  }
}

/** Run an ESAPI call on koffi's worker pool so the event loop keeps turning while the TPM works. */
export function callAsync(fn: Fn, args: unknown[]): Promise<number> {
  return new Promise((resolve, reject) => {
    fn.async(...args, (err: unknown, rc: number) => {
      // The callback holds `args` so the input buffers stay alive until the worker is done with them.
      keepAlive(args);
      if (err) reject(err as Error);
      else resolve(rc);
    });
  });
}

function keepAlive(value: unknown): void {
  if (value === keepAlive) throw new Error('unreachable');
}
