import { TpmError, type AgentErrorCode } from '../../errors.js';
import type { EkPolicy } from '../templates.js';
import { TpmWriter } from './tpm-bytes.js';
import { markPhase } from '../../phase-channel.js';
import { callAsync, decodeRc, esysFn, fromEsysStruct, loadTss, toStruct, type MuType, type TssLibrary } from './tss-ffi.js';

/** ESYS_TR constants (tss2_esys.h). */
export const ESYS_TR = {
  NONE: 0xfff,
  PASSWORD: 0x0ff,
  PCR0: 0,
  RH_OWNER: 0x101,
  RH_ENDORSEMENT: 0x10b,
} as const;

const TPM2_SE_HMAC = 0x00;
const TPM2_SE_POLICY = 0x01;
/** TPMA_SESSION continueSession | encrypt (the TPM encrypts the first response parameter). */
const TPMA_SESSION_CONTINUE_ENCRYPT = 0x01 | 0x40;
/** TPMT_SYM_DEF AES-128-CFB: parameter encryption of a salted session. */
const SYM_AES128_CFB = Uint8Array.of(0x00, 0x06, 0x00, 0x80, 0x00, 0x43);
/** PolicyOR takes 2..8 branches (TPM 2.0 Part 3, 23.6). */
const MAX_OR_BRANCHES = 8;
/** TPMT_SYM_DEF with algorithm TPM_ALG_NULL: an unencrypted policy session. */
const SYM_NULL = Uint8Array.of(0x00, 0x10);

/** TPM_RC_HANDLE in format one (TPM 2.0 Part 2, 6.6.3), with the handle/parameter number masked off. */
const TPM_RC_HANDLE = 0x08b;
const TSS2_TCTI_LAYER = 0x000a0000;

export function isTpmRc(rc: number, base: number): boolean {
  return (rc & 0xffff0000) === 0 && (rc & 0x80) !== 0 && (rc & 0xbf) === base;
}

export function isHandleError(rc: number): boolean {
  return isTpmRc(rc, TPM_RC_HANDLE);
}

/**
 * One ESAPI context over one TCTI. Every call goes through {@link EsysContext.exclusive}, so ESAPI
 * (which is not thread-safe) never sees two calls at once even though calls run on koffi's workers.
 */
export class EsysContext {
  private chain: Promise<unknown> = Promise.resolve();
  private closed = false;

  private constructor(
    readonly lib: TssLibrary,
    private ctx: unknown,
    private tcti: unknown,
  ) {}

  static open(tcti: string): EsysContext {
    const lib = loadTss();
    const tctiOut: unknown[] = [null];
    const rc1 = lib.tctiInit(tcti, tctiOut) as number;
    if (rc1 !== 0) {
      throw new TpmError('TPM_UNAVAILABLE', `TCTI could not be initialised (${decodeRc(lib, rc1)})`, { rc: rc1 });
    }
    markPhase('tpm:tcti');
    const esysOut: unknown[] = [null];
    const rc2 = esysFn(lib, 'Esys_Initialize')(esysOut, tctiOut[0], null) as number;
    if (rc2 !== 0) {
      lib.tctiFinalize(tctiOut);
      throw new TpmError('TPM_UNAVAILABLE', `ESAPI could not be initialised (${decodeRc(lib, rc2)})`, { rc: rc2 });
    }
    markPhase('tpm:esys');
    return new EsysContext(lib, esysOut[0], tctiOut[0]);
  }

  /** Run `fn` after every earlier call on this context has finished. */
  exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.chain.then(() => {
      if (this.closed) throw new TpmError('TPM_CLOSED', 'TPM device is closed');
      return fn();
    });
    this.chain = run.catch(() => undefined);
    return run;
  }

  /** Call an ESAPI function (the context is prepended); throw a coded error on a non-zero RC. */
  async call(name: string, args: unknown[], codeOnError: AgentErrorCode = 'TPM_COMMAND_FAILED'): Promise<void> {
    const rc = await this.callRc(name, args);
    if (rc !== 0) throw this.error(name, rc, codeOnError);
  }

  /** Call an ESAPI function and return its RC. */
  callRc(name: string, args: unknown[]): Promise<number> {
    return callAsync(esysFn(this.lib, name), [this.ctx, ...args]);
  }

  error(name: string, rc: number, code: AgentErrorCode = 'TPM_COMMAND_FAILED'): TpmError {
    const unreachable = (rc & 0xffff0000) === TSS2_TCTI_LAYER;
    return new TpmError(unreachable ? 'TPM_UNAVAILABLE' : code, `${name} failed: ${decodeRc(this.lib, rc)}`, { rc });
  }

  in(type: MuType, wire: Uint8Array): Buffer {
    return toStruct(this.lib, type, wire);
  }

  out(type: MuType, ptr: unknown): Uint8Array {
    return fromEsysStruct(this.lib, type, ptr);
  }

  /** Like {@link out}, for outputs that carry secrets (decrypted keys, shared secrets). */
  outSecret(type: MuType, ptr: unknown): Uint8Array {
    return fromEsysStruct(this.lib, type, ptr, true);
  }

  /** Release an ESAPI-allocated output we do not need. */
  free(ptr: unknown): void {
    if (ptr !== null && ptr !== undefined) this.lib.free(ptr);
  }

  async flush(tr: number): Promise<void> {
    const rc = await this.callRc('Esys_FlushContext', [tr]);
    if (rc !== 0) throw this.error('Esys_FlushContext', rc);
  }

  /** Forget an ESYS_TR without touching the TPM object (persistent handles). */
  async trClose(tr: number): Promise<void> {
    await this.callRc('Esys_TR_Close', [[tr]]);
  }

  /**
   * A policy session satisfying an EK's authPolicy (TCG EK Credential Profile 2.x, B.3.2 / B.4):
   * PolicySecret(TPM_RH_ENDORSEMENT) in a session of the EK's nameAlg, then, for the high-range
   * templates, PolicyOR over the profile's branch digests. The caller must flush it.
   */
  async endorsementPolicySession(policy: EkPolicy): Promise<number> {
    const branches = policy.orBranches;
    if (branches !== undefined && (branches.length < 2 || branches.length > MAX_OR_BRANCHES)) {
      throw new TypeError('PolicyOR needs 2..8 branch digests');
    }
    const session = [0];
    await this.call('Esys_StartAuthSession', [
      ESYS_TR.NONE,
      ESYS_TR.NONE,
      ESYS_TR.NONE,
      ESYS_TR.NONE,
      ESYS_TR.NONE,
      null,
      TPM2_SE_POLICY,
      this.in('TPMT_SYM_DEF', SYM_NULL),
      policy.hashAlg,
      session,
    ]);
    const handle = session[0]!;
    try {
      await this.call('Esys_PolicySecret', [
        ESYS_TR.RH_ENDORSEMENT,
        handle,
        ESYS_TR.PASSWORD,
        ESYS_TR.NONE,
        ESYS_TR.NONE,
        null,
        null,
        null,
        0,
        null,
        null,
      ]);
      if (branches !== undefined) {
        const list = new TpmWriter().u32(branches.length);
        for (const d of branches) list.tpm2b(d);
        await this.call('Esys_PolicyOR', [handle, ESYS_TR.NONE, ESYS_TR.NONE, ESYS_TR.NONE, this.in('TPML_DIGEST', list.finish())]);
      }
    } catch (err) {
      await this.flush(handle).catch(() => undefined);
      throw err;
    }
    return handle;
  }

  /**
   * A session salted with the loaded key `saltKey` (its secret is encrypted to that key, so only the
   * TPM and this process know the session key) that encrypts the TPM's first response parameter
   * with AES-128-CFB: a decrypted key does not cross the TPM interface in clear (TPM 2.0 Part 1 §21).
   * The caller must flush it.
   */
  async encryptingSession(saltKey: number, kind: 'hmac' | 'policy', hashAlg: number): Promise<number> {
    const session = [0];
    await this.call('Esys_StartAuthSession', [
      saltKey,
      ESYS_TR.NONE,
      ESYS_TR.NONE,
      ESYS_TR.NONE,
      ESYS_TR.NONE,
      null,
      kind === 'hmac' ? TPM2_SE_HMAC : TPM2_SE_POLICY,
      this.in('TPMT_SYM_DEF', SYM_AES128_CFB),
      hashAlg,
      session,
    ]);
    const handle = session[0]!;
    try {
      await this.call('Esys_TRSess_SetAttributes', [handle, TPMA_SESSION_CONTINUE_ENCRYPT, 0xff]);
    } catch (err) {
      await this.flush(handle).catch(() => undefined);
      throw err;
    }
    return handle;
  }

  /** TPM2_PolicyPCR in `session` over the current values of the selected PCRs (an empty pcrDigest: what they hold now). */
  async policyPcr(session: number, pcrSelection: Uint8Array): Promise<void> {
    await this.call('Esys_PolicyPCR', [session, ESYS_TR.NONE, ESYS_TR.NONE, ESYS_TR.NONE, this.in('TPM2B_DIGEST', Uint8Array.of(0, 0)), this.in('TPML_PCR_SELECTION', pcrSelection)]);
  }

  /** Run `fn` with a fresh EK policy session, flushed afterwards whatever happens. */
  async withEndorsementPolicy<T>(policy: EkPolicy, fn: (session: number) => Promise<T>): Promise<T> {
    const session = await this.endorsementPolicySession(policy);
    try {
      return await fn(session);
    } finally {
      await this.flush(session).catch(() => undefined);
    }
  }

  /** Finalise ESAPI and the TCTI. Must be called inside exclusive() or after the chain drained. */
  finalize(): void {
    if (this.closed) return;
    this.closed = true;
    const e = [this.ctx];
    esysFn(this.lib, 'Esys_Finalize')(e);
    const t = [this.tcti];
    this.lib.tctiFinalize(t);
    this.ctx = null;
    this.tcti = null;
  }

  get isClosed(): boolean {
    return this.closed;
  }
}
