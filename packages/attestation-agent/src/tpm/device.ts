import type { PcrBank } from './internal/tpm-alg.js';
import type { EkAlg, KeyAlg } from './templates.js';

export type { PcrBank } from './internal/tpm-alg.js';
export type { EkAlg, KeyAlg } from './templates.js';

/**
 * A key loaded in a TPM device. The handle behind it belongs to the device that returned it and is
 * released by {@link TpmDevice.flushKey} or {@link TpmDevice.close}.
 */
export interface TpmKey {
  readonly alg: KeyAlg;
  /** TPM2B_PUBLIC wire bytes. */
  readonly publicArea: Uint8Array;
  /** TPM Name (nameAlg || digest of TPMT_PUBLIC). */
  readonly name: Uint8Array;
  /** Set when the key lives at a persistent handle (0x81xxxxxx). */
  readonly persistentHandle: number | undefined;
  /**
   * The Qualified Name the TPM reports for a persistent key (TPM2_ReadPublic): it chains the names
   * of all its parents up to the hierarchy (TPM 2.0 Part 1, 16), so it proves which EK an AK was
   * created under. Unset for other keys.
   */
  readonly qualifiedName?: Uint8Array;
}

/** An AK's wrapped private part and public area, as Esys_Create returns them under the EK. */
export interface AkBlob {
  readonly alg: KeyAlg;
  /** TPM2B_PRIVATE wire bytes (encrypted by the parent EK; useless outside this TPM). */
  readonly privateBlob: Uint8Array;
  /** TPM2B_PUBLIC wire bytes. */
  readonly publicArea: Uint8Array;
}

/** A quote as the TPM returns it. */
export interface TpmQuote {
  /** TPMS_ATTEST wire bytes (what was signed). */
  readonly message: Uint8Array;
  /** Marshalled TPMT_SIGNATURE. */
  readonly signature: Uint8Array;
}

/**
 * A key created under the storage root key (SRK): its TPM2B_PRIVATE, wrapped by the SRK so that only
 * this TPM can load it, and its TPM2B_PUBLIC. Operations load it, use it and flush it again.
 */
export interface SrkChildBlob {
  readonly privateBlob: Uint8Array;
  readonly publicArea: Uint8Array;
}

/** A TPM2_PolicyPCR policy session over the *current* values of `indices` in `bank`. */
export interface PcrPolicy {
  readonly bank: PcrBank;
  readonly indices: readonly number[];
}

/** What TPM2_Certify returns: the TPMS_ATTEST (without its TPM2B size) and the TPMT_SIGNATURE. */
export interface TpmCertification {
  readonly certifyInfo: Uint8Array;
  readonly signature: Uint8Array;
}

export interface PcrDigestValue {
  readonly alg: PcrBank;
  readonly digest: Uint8Array;
}

/** The default persistent handle of the AK, as guest-components uses it. */
export const DEFAULT_AK_HANDLE = 0x81010002;

/**
 * NV indices of the EK certificates (TCG EK Credential Profile 2.x, 2.2.1.5): low range RSA 2048 and
 * ECC P-256, and the high-range ECC P-384 (H-3) certificate that swtpm writes.
 */
export const EK_CERT_NV_INDEX: Readonly<Record<EkAlg, number>> = { rsa: 0x01c00002, ecc: 0x01c0000a, ecc384: 0x01c00016 };

/**
 * The agent's port to a TPM. One implementation drives tpm2-tss over FFI ({@link openTpmDevice}),
 * another is software for tests and benchmarks ({@link createSoftwareTpm}). Calls on one device are
 * serialised.
 */
export interface TpmDevice {
  getRandom(bytes: number): Promise<Uint8Array>;
  /** PCR values of one bank, in the order of `indices`. */
  readPcrs(bank: PcrBank, indices: readonly number[]): Promise<Uint8Array[]>;
  extendPcr(index: number, digests: readonly PcrDigestValue[]): Promise<void>;
  /** Create the EK from a TCG template (L-1 RSA 2048 / L-2 ECC P-256 / H-3 ECC P-384). */
  createEk(alg: EkAlg): Promise<TpmKey>;
  /** Contents of an NV index (EK certificates: DER, trailing padding removed). */
  readNv(index: number): Promise<Uint8Array>;
  /** The key at a persistent handle; TPM_NO_AK when the handle is empty. */
  loadPersistentKey(handle?: number): Promise<TpmKey>;
  /** Create an AK under the EK (like tpm2_createak) and load it. */
  createAk(ek: TpmKey, alg: KeyAlg): Promise<{ key: TpmKey; blob: AkBlob }>;
  /** Load a previously created AK under the (freshly created) EK. */
  loadAk(ek: TpmKey, blob: AkBlob): Promise<TpmKey>;
  /** Make a loaded key persistent at `handle` (Esys_EvictControl); returns the persistent key. */
  persistKey(key: TpmKey, handle: number): Promise<TpmKey>;
  /** Remove the key at a persistent handle. */
  evictPersistent(handle: number): Promise<void>;
  /** TPM2_Quote of one bank's PCRs; `qualifyingData` ends up in TPMS_ATTEST.extraData. */
  quote(ak: TpmKey, bank: PcrBank, indices: readonly number[], qualifyingData: Uint8Array): Promise<TpmQuote>;
  /**
   * TPM2_ActivateCredential: recover the secret a verifier encrypted to the EK for the AK's name.
   * `credentialBlob` is TPM2B_ID_OBJECT and `encryptedSecret` TPM2B_ENCRYPTED_SECRET wire bytes.
   */
  activateCredential(ak: TpmKey, ek: TpmKey, credentialBlob: Uint8Array, encryptedSecret: Uint8Array): Promise<Uint8Array>;
  /**
   * Create a key from `template` (TPM2B_PUBLIC) under the SRK (the TCG ECC P-256 storage primary,
   * derived for the call and flushed). Nothing stays loaded.
   */
  createUnderSrk(template: Uint8Array): Promise<SrkChildBlob>;
  /** TPM2_Certify of an SRK child with `ak` (`qualifyingData` into extraData); the child is flushed after. */
  certify(key: SrkChildBlob, ak: TpmKey, qualifyingData: Uint8Array): Promise<TpmCertification>;
  /**
   * TPM2_RSA_Decrypt with OAEP, SHA-256 and an empty label. With `policy`, the key is authorised by
   * a PolicyPCR session (TPM_POLICY_FAILED when the PCRs no longer match its authPolicy).
   */
  rsaDecrypt(key: SrkChildBlob, ciphertext: Uint8Array, policy?: PcrPolicy): Promise<Uint8Array>;
  /** TPM2_ECDH_ZGen: the x coordinate of d·P for the public point P (with `policy` as above). */
  ecdhZGen(key: SrkChildBlob, point: { readonly x: Uint8Array; readonly y: Uint8Array }, policy?: PcrPolicy): Promise<Uint8Array>;
  /** Release a transient key (no-op for persistent keys besides dropping the reference). */
  flushKey(key: TpmKey): Promise<void>;
  /** Handles of the transient objects currently loaded in the TPM (for leak checks). */
  transientHandles(): Promise<number[]>;
  /** Flush everything still held and release the connection. Safe to call twice. */
  close(): Promise<void>;
}
