import { TpmError } from '../errors.js';
import type { AkBlob, PcrDigestValue, PcrPolicy, SrkChildBlob, TpmCertification, TpmDevice, TpmKey, TpmQuote } from './device.js';
import { DEFAULT_AK_HANDLE } from './device.js';
import { ESYS_TR, EsysContext, isHandleError } from './internal/esys-context.js';
import { TpmReader, TpmWriter } from './internal/tpm-bytes.js';
import { assertPcrIndices, bankAlg, bankDigestSize, pcrSelectionBytes, type PcrBank } from './internal/tpm-alg.js';
import { certifySrkChild, createSrkChild, ecdhZGenSrkChild, MAX_ECC_COORDINATE_BYTES, MAX_RSA_BYTES, rsaDecryptSrkChild } from './internal/srk-child.js';
import { readNvIndex } from './internal/nv-read.js';
import { readPcrBank } from './internal/pcr-read.js';
import { listTransientHandles } from './internal/transient-handles.js';
import { akTemplate, ekPolicyOf, ekTemplate, type EkAlg, type EkPolicy, type KeyAlg } from './templates.js';
import { decodePublicArea, publicAreaName } from './public-area.js';

/** TCTI string tpm2-tools uses by default. */
export const DEFAULT_TCTI = 'device:/dev/tpmrm0';

export interface OpenTpmDeviceOptions {
  /**
   * TCTI configuration as tpm2-tools takes it: `device:/dev/tpmrm0` (default),
   * `swtpm:host=127.0.0.1,port=2321`, `mssim:host=127.0.0.1,port=2321`.
   */
  tcti?: string;
}

const EMPTY_SENSITIVE = Uint8Array.of(0x00, 0x04, 0x00, 0x00, 0x00, 0x00);
const EMPTY_TPM2B = Uint8Array.of(0x00, 0x00);
const EMPTY_PCR_SELECTION = Uint8Array.of(0, 0, 0, 0);
/** TPMT_SIG_SCHEME TPM_ALG_NULL: sign with the key's own scheme. */
const SIG_SCHEME_NULL = Uint8Array.of(0x00, 0x10);
/** TPM_RC_OBJECT_MEMORY: no free object slot (a TPM without a resource manager in front). */
const TPM_RC_OBJECT_MEMORY = 0x902;

interface KeySlot {
  tr: number;
  transient: boolean;
}

/**
 * Open a TPM through tpm2-tss. Throws TPM_UNAVAILABLE when the libraries, the TCTI or the TPM
 * cannot be reached. The caller owns the device and must close() it.
 */
export async function openTpmDevice(options: OpenTpmDeviceOptions = {}): Promise<TpmDevice> {
  const tcti = options.tcti ?? DEFAULT_TCTI;
  if (typeof tcti !== 'string' || tcti.length === 0 || tcti.includes('\0')) {
    throw new TypeError('tcti must be a non-empty string without NUL');
  }
  return new TssTpmDevice(EsysContext.open(tcti));
}

function keyAlgOf(publicArea: Uint8Array): KeyAlg {
  return decodePublicArea(publicArea).type;
}

/** The policy session an EK needs (PolicySecret, or PolicySecret + PolicyOR for high-range EKs). */
function ekPolicy(ek: TpmKey): EkPolicy {
  const info = decodePublicArea(ek.publicArea);
  const policy = ekPolicyOf(info.nameAlg, info.authPolicy);
  // Programmer misuse: only EKs made from our templates (createEk) are parents / activation keys here.
  if (policy === undefined) throw new TypeError('ek is not an EK made from a TCG EK template');
  return policy;
}

class TssTpmDevice implements TpmDevice {
  private readonly keys = new Map<TpmKey, KeySlot>();

  constructor(private readonly esys: EsysContext) {}

  private slot(key: TpmKey): KeySlot {
    const s = this.keys.get(key);
    if (s === undefined) throw new TypeError('key does not belong to this TPM device or was flushed');
    return s;
  }

  private track(publicArea: Uint8Array, tr: number, transient: boolean, persistentHandle?: number, qualifiedName?: Uint8Array): TpmKey {
    const key: TpmKey = {
      alg: keyAlgOf(publicArea),
      publicArea,
      name: publicAreaName(publicArea),
      persistentHandle,
      ...(qualifiedName !== undefined ? { qualifiedName } : {}),
    };
    this.keys.set(key, { tr, transient });
    return key;
  }

  /** Track a freshly loaded object, flushing it if its public area cannot be read back. */
  private async adopt(tr: number, publicArea: Uint8Array | undefined): Promise<TpmKey> {
    try {
      let pub = publicArea;
      if (pub === undefined) {
        const out: unknown[] = [null];
        await this.esys.call('Esys_ReadPublic', [tr, ESYS_TR.NONE, ESYS_TR.NONE, ESYS_TR.NONE, out, null, null]);
        pub = this.esys.out('TPM2B_PUBLIC', out[0]);
      }
      return this.track(pub, tr, true);
    } catch (err) {
      await this.esys.flush(tr).catch(() => undefined);
      throw err;
    }
  }

  async getRandom(bytes: number): Promise<Uint8Array> {
    if (!Number.isInteger(bytes) || bytes < 1 || bytes > 1024) throw new TypeError('bytes must be 1..1024');
    return this.esys.exclusive(async () => {
      const out = new Uint8Array(bytes);
      let filled = 0;
      while (filled < bytes) {
        const ptr: unknown[] = [null];
        await this.esys.call('Esys_GetRandom', [ESYS_TR.NONE, ESYS_TR.NONE, ESYS_TR.NONE, Math.min(32, bytes - filled), ptr]);
        const chunk = new TpmReader(this.esys.out('TPM2B_DIGEST', ptr[0]), 'TPM2B_DIGEST').tpm2b(64);
        // SECURITY: an empty answer would loop forever (TPM 2.0 Part 3, 16.1 GetRandom)
        if (chunk.length === 0) throw new TpmError('TPM_BAD_RESPONSE', 'GetRandom returned no bytes');
        out.set(chunk.subarray(0, bytes - filled), filled);
        filled += chunk.length;
      }
      return out;
    });
  }

  async readPcrs(bank: PcrBank, indices: readonly number[]): Promise<Uint8Array[]> {
    assertPcrIndices(indices);
    return this.esys.exclusive(() => readPcrBank(this.esys, bank, indices));
  }

  async extendPcr(index: number, digests: readonly PcrDigestValue[]): Promise<void> {
    assertPcrIndices([index]);
    if (digests.length === 0 || digests.length > 3) throw new TypeError('1..3 digests are required');
    const w = new TpmWriter().u32(digests.length);
    for (const d of digests) {
      if (d.digest.length !== bankDigestSize(d.alg)) throw new TypeError(`digest for ${d.alg} has the wrong size`);
      w.u16(bankAlg(d.alg)).bytes(d.digest);
    }
    const wire = w.finish();
    return this.esys.exclusive(() =>
      this.esys.call('Esys_PCR_Extend', [
        ESYS_TR.PCR0 + index,
        ESYS_TR.PASSWORD,
        ESYS_TR.NONE,
        ESYS_TR.NONE,
        this.esys.in('TPML_DIGEST_VALUES', wire),
      ]),
    );
  }

  async createEk(alg: EkAlg): Promise<TpmKey> {
    return this.esys.exclusive(async () => {
      const obj = [0];
      const pub: unknown[] = [null];
      await this.esys.call('Esys_CreatePrimary', [
        ESYS_TR.RH_ENDORSEMENT,
        ESYS_TR.PASSWORD,
        ESYS_TR.NONE,
        ESYS_TR.NONE,
        this.esys.in('TPM2B_SENSITIVE_CREATE', EMPTY_SENSITIVE),
        this.esys.in('TPM2B_PUBLIC', ekTemplate(alg)),
        this.esys.in('TPM2B_DATA', EMPTY_TPM2B),
        this.esys.in('TPML_PCR_SELECTION', EMPTY_PCR_SELECTION),
        obj,
        pub,
        null,
        null,
        null,
      ]);
      let publicArea: Uint8Array;
      try {
        publicArea = this.esys.out('TPM2B_PUBLIC', pub[0]);
      } catch (err) {
        await this.esys.flush(obj[0]!).catch(() => undefined);
        throw err;
      }
      return this.adopt(obj[0]!, publicArea);
    });
  }

  async readNv(index: number): Promise<Uint8Array> {
    if (!Number.isInteger(index) || index < 0x01000000 || index > 0x01ffffff) throw new TypeError('not an NV index');
    return this.esys.exclusive(() => readNvIndex(this.esys, index));
  }

  async loadPersistentKey(handle: number = DEFAULT_AK_HANDLE): Promise<TpmKey> {
    if (!Number.isInteger(handle) || handle < 0x81000000 || handle > 0x81ffffff) throw new TypeError('not a persistent handle');
    return this.esys.exclusive(async () => {
      const obj = [0];
      const rc = await this.esys.callRc('Esys_TR_FromTPMPublic', [handle, ESYS_TR.NONE, ESYS_TR.NONE, ESYS_TR.NONE, obj]);
      if (rc !== 0) {
        throw isHandleError(rc)
          ? new TpmError('TPM_NO_AK', `no key at persistent handle 0x${handle.toString(16)}`, { rc })
          : this.esys.error('Esys_TR_FromTPMPublic', rc);
      }
      try {
        const out: unknown[] = [null];
        const qn: unknown[] = [null];
        await this.esys.call('Esys_ReadPublic', [obj[0], ESYS_TR.NONE, ESYS_TR.NONE, ESYS_TR.NONE, out, null, qn]);
        const qualifiedName = new TpmReader(this.esys.out('TPM2B_NAME', qn[0]), 'TPM2B_NAME').tpm2b(68);
        return this.track(this.esys.out('TPM2B_PUBLIC', out[0]), obj[0]!, false, handle, qualifiedName);
      } catch (err) {
        await this.esys.trClose(obj[0]!);
        throw err;
      }
    });
  }

  async createAk(ek: TpmKey, alg: KeyAlg): Promise<{ key: TpmKey; blob: AkBlob }> {
    const parent = this.slot(ek).tr;
    const policy = ekPolicy(ek);
    return this.esys.exclusive(async () => {
      const priv: unknown[] = [null];
      const pub: unknown[] = [null];
      await this.esys.withEndorsementPolicy(policy, (session) =>
        this.esys.call('Esys_Create', [
          parent,
          session,
          ESYS_TR.NONE,
          ESYS_TR.NONE,
          this.esys.in('TPM2B_SENSITIVE_CREATE', EMPTY_SENSITIVE),
          this.esys.in('TPM2B_PUBLIC', akTemplate(alg)),
          this.esys.in('TPM2B_DATA', EMPTY_TPM2B),
          this.esys.in('TPML_PCR_SELECTION', EMPTY_PCR_SELECTION),
          priv,
          pub,
          null,
          null,
          null,
        ]),
      );
      let privateBlob: Uint8Array;
      try {
        privateBlob = this.esys.out('TPM2B_PRIVATE', priv[0]);
      } catch (err) {
        this.esys.free(pub[0]);
        throw err;
      }
      const blob: AkBlob = { alg, privateBlob, publicArea: this.esys.out('TPM2B_PUBLIC', pub[0]) };
      const key = await this.loadUnderEk(parent, policy, blob);
      return { key, blob };
    });
  }

  async loadAk(ek: TpmKey, blob: AkBlob): Promise<TpmKey> {
    const parent = this.slot(ek).tr;
    const policy = ekPolicy(ek);
    return this.esys.exclusive(() => this.loadUnderEk(parent, policy, blob));
  }

  private async loadUnderEk(parent: number, policy: EkPolicy, blob: AkBlob): Promise<TpmKey> {
    const inPrivate = this.esys.in('TPM2B_PRIVATE', blob.privateBlob);
    const inPublic = this.esys.in('TPM2B_PUBLIC', blob.publicArea);
    const obj = [0];
    await this.esys.withEndorsementPolicy(policy, (session) =>
      this.esys.call('Esys_Load', [parent, session, ESYS_TR.NONE, ESYS_TR.NONE, inPrivate, inPublic, obj]),
    );
    return this.adopt(obj[0]!, blob.publicArea);
  }

  async persistKey(key: TpmKey, handle: number): Promise<TpmKey> {
    if (!Number.isInteger(handle) || handle < 0x81000000 || handle > 0x81ffffff) throw new TypeError('not a persistent handle');
    const { tr } = this.slot(key);
    return this.esys.exclusive(async () => {
      const out = [0];
      await this.esys.call('Esys_EvictControl', [ESYS_TR.RH_OWNER, tr, ESYS_TR.PASSWORD, ESYS_TR.NONE, ESYS_TR.NONE, handle, out]);
      return this.track(key.publicArea, out[0]!, false, handle);
    });
  }

  async evictPersistent(handle: number): Promise<void> {
    if (!Number.isInteger(handle) || handle < 0x81000000 || handle > 0x81ffffff) throw new TypeError('not a persistent handle');
    return this.esys.exclusive(async () => {
      const obj = [0];
      const rc = await this.esys.callRc('Esys_TR_FromTPMPublic', [handle, ESYS_TR.NONE, ESYS_TR.NONE, ESYS_TR.NONE, obj]);
      if (rc !== 0) {
        if (isHandleError(rc)) return;
        throw this.esys.error('Esys_TR_FromTPMPublic', rc);
      }
      for (const [k, s] of this.keys) if (s.tr === obj[0] || k.persistentHandle === handle) this.keys.delete(k);
      await this.esys.call('Esys_EvictControl', [ESYS_TR.RH_OWNER, obj[0], ESYS_TR.PASSWORD, ESYS_TR.NONE, ESYS_TR.NONE, handle, [0]]);
    });
  }

  async quote(ak: TpmKey, bank: PcrBank, indices: readonly number[], qualifyingData: Uint8Array): Promise<TpmQuote> {
    assertPcrIndices(indices);
    if (qualifyingData.length > 64) throw new TypeError('qualifyingData is longer than 64 bytes');
    const { tr } = this.slot(ak);
    return this.esys.exclusive(async () => {
      const quoted: unknown[] = [null];
      const sig: unknown[] = [null];
      await this.esys.call('Esys_Quote', [
        tr,
        ESYS_TR.PASSWORD,
        ESYS_TR.NONE,
        ESYS_TR.NONE,
        this.esys.in('TPM2B_DATA', new TpmWriter().tpm2b(qualifyingData).finish()),
        this.esys.in('TPMT_SIG_SCHEME', SIG_SCHEME_NULL),
        this.esys.in('TPML_PCR_SELECTION', pcrSelectionBytes(bank, indices)),
        quoted,
        sig,
      ]);
      let attest: Uint8Array;
      try {
        attest = this.esys.out('TPM2B_ATTEST', quoted[0]);
      } catch (err) {
        this.esys.free(sig[0]);
        throw err;
      }
      const message = new Uint8Array(new TpmReader(attest, 'TPM2B_ATTEST').tpm2b(4096));
      return { message, signature: this.esys.out('TPMT_SIGNATURE', sig[0]) };
    });
  }

  async activateCredential(ak: TpmKey, ek: TpmKey, credentialBlob: Uint8Array, encryptedSecret: Uint8Array): Promise<Uint8Array> {
    const akTr = this.slot(ak).tr;
    const ekTr = this.slot(ek).tr;
    const policy = ekPolicy(ek);
    return this.esys.exclusive(async () => {
      // Hostile blobs are refused by Tss2_MU_*_Unmarshal (size checks) before the TPM sees them.
      const blob = this.esys.in('TPM2B_ID_OBJECT', credentialBlob);
      const secret = this.esys.in('TPM2B_ENCRYPTED_SECRET', encryptedSecret);
      const out: unknown[] = [null];
      await this.esys.withEndorsementPolicy(policy, (session) =>
        this.esys.call('Esys_ActivateCredential', [akTr, ekTr, ESYS_TR.PASSWORD, session, ESYS_TR.NONE, blob, secret, out]),
      );
      return new Uint8Array(new TpmReader(this.esys.out('TPM2B_DIGEST', out[0]), 'TPM2B_DIGEST').tpm2b(64));
    });
  }

  async createUnderSrk(template: Uint8Array): Promise<SrkChildBlob> {
    return this.esys.exclusive(() => this.withObjectSlots([], () => createSrkChild(this.esys, template)));
  }

  async certify(key: SrkChildBlob, ak: TpmKey, qualifyingData: Uint8Array): Promise<TpmCertification> {
    if (qualifyingData.length > 64) throw new TypeError('qualifyingData is longer than 64 bytes');
    const akSlot = this.slot(ak);
    // The AK stays loaded (read its handle late: parking other keys never moves it).
    return this.esys.exclusive(() => this.withObjectSlots([akSlot], () => certifySrkChild(this.esys, key, akSlot.tr, qualifyingData)));
  }

  async rsaDecrypt(key: SrkChildBlob, ciphertext: Uint8Array, policy?: PcrPolicy): Promise<Uint8Array> {
    if (ciphertext.length === 0 || ciphertext.length > MAX_RSA_BYTES) throw new TypeError(`ciphertext must be 1..${MAX_RSA_BYTES} bytes`);
    if (policy !== undefined) assertPcrIndices(policy.indices);
    return this.esys.exclusive(() => this.withObjectSlots([], () => rsaDecryptSrkChild(this.esys, key, ciphertext, policy)));
  }

  async ecdhZGen(key: SrkChildBlob, point: { readonly x: Uint8Array; readonly y: Uint8Array }, policy?: PcrPolicy): Promise<Uint8Array> {
    if (point.x.length > MAX_ECC_COORDINATE_BYTES || point.y.length > MAX_ECC_COORDINATE_BYTES) throw new TypeError('ECC coordinates are too long');
    if (policy !== undefined) assertPcrIndices(policy.indices);
    return this.esys.exclusive(() => this.withObjectSlots([], () => ecdhZGenSrkChild(this.esys, key, point, policy)));
  }

  /**
   * Run `fn`; if the TPM has no free object slot (no resource manager in front of it, e.g. swtpm
   * with the EK and AK loaded), park the other transient keys this device holds (ContextSave +
   * flush), run `fn` again, and load them back afterwards. `keep` stay loaded.
   */
  private async withObjectSlots<T>(keep: readonly KeySlot[], fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      if (!(err instanceof TpmError && err.rc === TPM_RC_OBJECT_MEMORY)) throw err;
    }
    const parked: { slot: KeySlot; context: Uint8Array }[] = [];
    try {
      for (const s of this.keys.values()) {
        if (!s.transient || keep.includes(s)) continue;
        const out: unknown[] = [null];
        await this.esys.call('Esys_ContextSave', [s.tr, out]);
        const context = this.esys.out('TPMS_CONTEXT', out[0]);
        await this.esys.flush(s.tr);
        parked.push({ slot: s, context });
      }
      return await fn();
    } finally {
      for (const p of parked) {
        const tr = [0];
        await this.esys.call('Esys_ContextLoad', [this.esys.in('TPMS_CONTEXT', p.context), tr]);
        p.slot.tr = tr[0]!;
      }
    }
  }

  async flushKey(key: TpmKey): Promise<void> {
    const s = this.keys.get(key);
    if (s === undefined) return Promise.resolve();
    this.keys.delete(key);
    return this.esys.exclusive(() => (s.transient ? this.esys.flush(s.tr) : this.esys.trClose(s.tr)));
  }

  async transientHandles(): Promise<number[]> {
    return this.esys.exclusive(() => listTransientHandles(this.esys));
  }

  close(): Promise<void> {
    if (this.esys.isClosed) return Promise.resolve();
    return this.esys
      .exclusive(async () => {
        for (const [, s] of this.keys) {
          await (s.transient ? this.esys.flush(s.tr) : this.esys.trClose(s.tr)).catch(() => undefined);
        }
        this.keys.clear();
        this.esys.finalize();
      })
      .catch((err: unknown) => {
        if (err instanceof TpmError && err.code === 'TPM_CLOSED') return;
        throw err;
      });
  }
}
