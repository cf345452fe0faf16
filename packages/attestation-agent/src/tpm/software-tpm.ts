/**
 * A TPM simulated in memory, FOR TESTS AND BENCHMARKS ONLY. It is not a TPM: its keys live in this
 * process, so its quotes prove nothing about a machine and must never be used for attestation.
 * It exists so that tests and benchmarks can produce byte-exact TPMS_ATTEST / TPMT_SIGNATURE
 * structures (and simulate hundreds of agents) without a TPM.
 */
import { createHash, generateKeyPairSync, randomBytes, sign, type KeyObject } from 'node:crypto';
import { TpmError } from '../errors.js';
import type { AkBlob, PcrDigestValue, TpmDevice, TpmKey, TpmQuote } from './device.js';
import { DEFAULT_AK_HANDLE } from './device.js';
import { TpmReader, TpmWriter } from './internal/tpm-bytes.js';
import { PCR_BANKS, PCR_COUNT, TPM_ALG, assertPcrIndices, bankAlg, bankDigestSize, type PcrBank } from './internal/tpm-alg.js';
import { encodeQuoteAttest, encodeTpmtSignature } from './quote-format.js';
import { activateCredentialRsa } from './internal/software-credential.js';
import { publicAreaName } from './public-area.js';
import { akTemplate, ekTemplate, type KeyAlg, type PublicUnique } from './templates.js';

export interface SoftwareTpmOptions {
  /**
   * Private keys to use for AKs instead of generating one per createAk() (RSA 2048 / EC P-256).
   * Benchmarks simulating many agents pass pre-generated keys so creating an agent stays cheap.
   */
  akKeys?: { rsa?: KeyObject; ecc?: KeyObject };
  /** Private keys to use for EKs (same shapes). */
  ekKeys?: { rsa?: KeyObject; ecc?: KeyObject };
  /** Contents of NV indices, e.g. an EK certificate at 0x01c00002. */
  nv?: ReadonlyMap<number, Uint8Array>;
  /** TPMS_ATTEST.firmwareVersion; default 0x2023_0001_0000_0000. */
  firmwareVersion?: bigint;
}

interface SoftKey {
  readonly key: TpmKey;
  readonly privateKey: KeyObject;
  readonly handle: number;
}

function generate(alg: KeyAlg): KeyObject {
  return alg === 'rsa'
    ? generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey
    : generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
}

function uniqueOf(privateKey: KeyObject, alg: KeyAlg): PublicUnique {
  const jwk = privateKey.export({ format: 'jwk' });
  if (alg === 'rsa') {
    // SECURITY: the template fixes RSA 2048 with the default exponent; another key would mislabel itself (TPM 2.0 Part 2, 12.2.3.5)
    if (jwk.kty !== 'RSA' || jwk.e !== 'AQAB' || Buffer.from(jwk.n ?? '', 'base64url').length !== 256) {
      throw new TypeError('software TPM RSA keys must be RSA 2048 with exponent 65537');
    }
    return { n: Buffer.from(jwk.n!, 'base64url') };
  }
  if (jwk.kty !== 'EC' || jwk.crv !== 'P-256') throw new TypeError('software TPM ECC keys must be P-256');
  return { x: Buffer.from(jwk.x!, 'base64url'), y: Buffer.from(jwk.y!, 'base64url') };
}

/** Create an in-memory TPM. See the module comment: for tests and benchmarks only, not attestation. */
export function createSoftwareTpm(options: SoftwareTpmOptions = {}): TpmDevice {
  const pcrs = new Map<PcrBank, Uint8Array[]>();
  for (const bank of PCR_BANKS) {
    // PCRs 17-22 (D-RTM) start at all-ones, the rest at zero (TCG PC Client Platform TPM Profile, 4.6.2)
    pcrs.set(
      bank,
      Array.from({ length: PCR_COUNT }, (_, i) => new Uint8Array(bankDigestSize(bank)).fill(i >= 17 && i <= 22 ? 0xff : 0)),
    );
  }
  const loaded = new Map<TpmKey, SoftKey>();
  const persistent = new Map<number, SoftKey>();
  /** privateBlob id (hex) → private key: blobs only load on the instance that made them, like a TPM. */
  const blobs = new Map<string, KeyObject>();
  const firmwareVersion = options.firmwareVersion ?? 0x2023_0001_0000_0000n;
  const startedAt = Date.now();
  let nextHandle = 0x80000000;
  let closed = false;

  const live = (): void => {
    if (closed) throw new TpmError('TPM_CLOSED', 'TPM device is closed');
  };

  const load = (publicArea: Uint8Array, alg: KeyAlg, privateKey: KeyObject, persistentHandle?: number): SoftKey => {
    const key: TpmKey = { alg, publicArea, name: publicAreaName(publicArea), persistentHandle };
    const soft = { key, privateKey, handle: persistentHandle ?? nextHandle++ };
    loaded.set(key, soft);
    return soft;
  };

  const lookup = (key: TpmKey): SoftKey => {
    const s = loaded.get(key);
    if (s === undefined) throw new TypeError('key does not belong to this TPM device or was flushed');
    return s;
  };

  const bank = (b: PcrBank): Uint8Array[] => pcrs.get(b)!;

  return {
    async getRandom(bytes) {
      live();
      if (!Number.isInteger(bytes) || bytes < 1 || bytes > 1024) throw new TypeError('bytes must be 1..1024');
      return new Uint8Array(randomBytes(bytes));
    },

    async readPcrs(b, indices) {
      live();
      assertPcrIndices(indices);
      return indices.map((i) => new Uint8Array(bank(b)[i]!));
    },

    async extendPcr(index, digests: readonly PcrDigestValue[]) {
      live();
      assertPcrIndices([index]);
      if (digests.length === 0 || digests.length > 3) throw new TypeError('1..3 digests are required');
      for (const d of digests) {
        if (d.digest.length !== bankDigestSize(d.alg)) throw new TypeError(`digest for ${d.alg} has the wrong size`);
      }
      for (const d of digests) {
        const values = bank(d.alg);
        values[index] = new Uint8Array(createHash(d.alg).update(values[index]!).update(d.digest).digest());
      }
    },

    async createEk(alg) {
      live();
      if (alg === 'ecc384') throw new TpmError('TPM_UNSUPPORTED', 'the software TPM makes low-range (L-1/L-2) EKs only');
      const privateKey = options.ekKeys?.[alg] ?? generate(alg);
      return load(ekTemplate(alg, uniqueOf(privateKey, alg)), alg, privateKey).key;
    },

    async readNv(index) {
      live();
      const v = options.nv?.get(index);
      if (v === undefined) throw new TpmError('TPM_NV_NOT_FOUND', `NV index 0x${index.toString(16)} is not defined`);
      return new Uint8Array(v);
    },

    async loadPersistentKey(handle = DEFAULT_AK_HANDLE) {
      live();
      const p = persistent.get(handle);
      if (p === undefined) throw new TpmError('TPM_NO_AK', `no key at persistent handle 0x${handle.toString(16)}`);
      return load(p.key.publicArea, p.key.alg, p.privateKey, handle).key;
    },

    async createAk(ek, alg) {
      live();
      lookup(ek);
      const privateKey = options.akKeys?.[alg] ?? generate(alg);
      const publicArea = akTemplate(alg, uniqueOf(privateKey, alg));
      const id = randomBytes(32);
      blobs.set(id.toString('hex'), privateKey);
      const blob: AkBlob = { alg, privateBlob: new TpmWriter().tpm2b(id).finish(), publicArea };
      return { key: load(publicArea, alg, privateKey).key, blob };
    },

    async loadAk(ek, blob) {
      live();
      lookup(ek);
      const id = new TpmReader(blob.privateBlob, 'TPM2B_PRIVATE').tpm2b(64);
      const privateKey = blobs.get(Buffer.from(id).toString('hex'));
      // SECURITY: a blob this instance did not make cannot be loaded, as on a TPM (TPM 2.0 Part 1, 23.4 integrity)
      if (privateKey === undefined) throw new TpmError('TPM_COMMAND_FAILED', 'private blob was not made by this TPM');
      return load(blob.publicArea, blob.alg, privateKey).key;
    },

    async persistKey(key, handle) {
      live();
      const s = lookup(key);
      if (persistent.has(handle)) throw new TpmError('TPM_COMMAND_FAILED', 'persistent handle is in use');
      const p = load(key.publicArea, key.alg, s.privateKey, handle);
      persistent.set(handle, p);
      return p.key;
    },

    async evictPersistent(handle) {
      live();
      persistent.delete(handle);
      for (const [k, s] of loaded) if (s.handle === handle) loaded.delete(k);
    },

    async quote(ak, b: PcrBank, indices, qualifyingData): Promise<TpmQuote> {
      live();
      assertPcrIndices(indices);
      if (qualifyingData.length > 64) throw new TypeError('qualifyingData is longer than 64 bytes');
      const s = lookup(ak);
      const sorted = [...indices].sort((x, y) => x - y);
      const h = createHash('sha256');
      for (const i of sorted) h.update(bank(b)[i]!);
      const message = encodeQuoteAttest({
        // Simplification: a TPM puts the key's qualified name here; the software TPM uses its name.
        qualifiedSigner: ak.name,
        extraData: qualifyingData,
        clock: BigInt(Date.now() - startedAt),
        resetCount: 0,
        restartCount: 0,
        safe: true,
        firmwareVersion,
        pcrSelections: [{ hashAlg: bankAlg(b), indices: sorted }],
        pcrDigest: h.digest(),
      });
      let signature: Uint8Array;
      if (ak.alg === 'rsa') {
        signature = encodeTpmtSignature({ sigAlg: 'rsassa', hashAlg: TPM_ALG.SHA256, sig: sign('sha256', message, s.privateKey) });
      } else {
        const rs = sign('sha256', message, { key: s.privateKey, dsaEncoding: 'ieee-p1363' });
        signature = encodeTpmtSignature({ sigAlg: 'ecdsa', hashAlg: TPM_ALG.SHA256, r: rs.subarray(0, 32), s: rs.subarray(32) });
      }
      return { message, signature };
    },

    async activateCredential(ak, ek, credentialBlob, encryptedSecret) {
      live();
      lookup(ak);
      const e = lookup(ek);
      if (ek.alg !== 'rsa') throw new TpmError('TPM_UNSUPPORTED', 'the software TPM activates credentials with an RSA EK only');
      return activateCredentialRsa(e.privateKey, ak.name, credentialBlob, encryptedSecret);
    },

    async createUnderSrk() {
      throw new TpmError('TPM_UNSUPPORTED', 'the software TPM has no storage hierarchy: TPM-resident tee keys need a TPM');
    },

    async certify() {
      throw new TpmError('TPM_UNSUPPORTED', 'the software TPM has no storage hierarchy: TPM-resident tee keys need a TPM');
    },

    async rsaDecrypt() {
      throw new TpmError('TPM_UNSUPPORTED', 'the software TPM has no storage hierarchy: TPM-resident tee keys need a TPM');
    },

    async ecdhZGen() {
      throw new TpmError('TPM_UNSUPPORTED', 'the software TPM has no storage hierarchy: TPM-resident tee keys need a TPM');
    },

    async flushKey(key) {
      loaded.delete(key);
    },

    async transientHandles() {
      live();
      return [...loaded.values()].filter((s) => s.key.persistentHandle === undefined).map((s) => s.handle);
    },

    async close() {
      closed = true;
      loaded.clear();
    },
  };
}
