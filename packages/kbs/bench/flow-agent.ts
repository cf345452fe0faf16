/**
 * The flow benchmark's simulated agent, made cheap so that the load generator is never what limits
 * the KBS: synchronous node:crypto only, no jose, nothing per flow that a real agent would not do.
 *
 * What is precomputed (legal: a real agent has it before it talks to the KBS): the AK (a software
 * TPM's, registered as trusted), its SPKI and the PCR values. What every flow does afresh, as a
 * real agent must: a new ephemeral EC P-256 tee key, the runtime-data digest over the KBS's fresh
 * nonce and that key, a fresh TPM quote over the digest (the software TPM signs a new TPMS_ATTEST
 * with the AK), and the decryption of the JWE the KBS returns (ECDH-ES+A256KW with A256GCM,
 * checking the tag), compared with the secret that was stored.
 */
import { createDecipheriv, createECDH, createHash, type ECDH, type KeyObject } from 'node:crypto';
import { fitReportData, runtimeDataDigest, TPM_REPORT_DATA_BYTES, type TeePubkey } from '@keyhold/protocol';
import { createSoftwareTpm, loadOrCreateAk, tpm2bPublicToSpkiDer, type TpmDevice, type TpmKey } from '@keyhold/attestation-agent';

const ALL_PCRS = Array.from({ length: 24 }, (_, i) => i);
const AES_KW_IV = Buffer.from('a6a6a6a6a6a6a6a6', 'hex');
const KDF_OTHER_INFO = Buffer.concat([Buffer.from([0, 0, 0, 14]), Buffer.from('ECDH-ES+A256KW', 'ascii'), Buffer.alloc(8), Buffer.from([0, 0, 1, 0])]);
const ROUND_1 = Buffer.from([0, 0, 0, 1]);

/** One flow's ephemeral tee key: the private half stays in this ECDH object. */
export interface FlowTeeKey {
  readonly ecdh: ECDH;
  readonly jwk: TeePubkey;
}

/** The JWE the KBS returns for a resource (flattened serialization). */
export interface FlatJwe {
  readonly protected: string;
  readonly encrypted_key: string;
  readonly iv: string;
  readonly ciphertext: string;
  readonly tag: string;
}

export class BenchAgent {
  readonly #tpm: TpmDevice;
  readonly #ak: TpmKey;
  readonly #akPublic: string;
  readonly #pcrs: readonly string[];

  private constructor(tpm: TpmDevice, ak: TpmKey, akPublic: string, pcrs: readonly string[]) {
    this.#tpm = tpm;
    this.#ak = ak;
    this.#akPublic = akPublic;
    this.#pcrs = pcrs;
  }

  /**
   * `count` agents, each its own node: its own software TPM and AK (so the KBS keeps one node
   * record per agent, as in a real fleet, instead of every agent updating one record). The EK key is
   * shared (`ekKey`): a software TPM's creation would otherwise make an RSA EK, which costs far more
   * than a quote; the KBS identifies these nodes by their trusted AK, not their EK. AK keys come from
   * `newAkKey` (EC P-256 keys cost microseconds; RSA ones ~0.1 s each). Each quote is made for one
   * flow's nonce.
   */
  static async createMany(count: number, newAkKey: () => KeyObject, ekKey: KeyObject, alg: 'ecc' | 'rsa'): Promise<BenchAgent[]> {
    return Promise.all(
      Array.from({ length: count }, async () => {
        const tpm = createSoftwareTpm({ akKeys: { [alg]: newAkKey() }, ekKeys: { rsa: ekKey } });
        const { ak } = await loadOrCreateAk(tpm, { persistentHandle: 0x81010002, persist: true, alg });
        const pcrs = (await tpm.readPcrs('sha256', ALL_PCRS)).map((v) => Buffer.from(v).toString('hex'));
        return new BenchAgent(tpm, ak, Buffer.from(tpm2bPublicToSpkiDer(ak.publicArea)).toString('base64'), pcrs);
      }),
    );
  }

  /** Close the software TPMs of `agents` (each once). */
  static async closeAll(agents: readonly BenchAgent[]): Promise<void> {
    await Promise.all([...new Set(agents.map((a) => a.#tpm))].map((tpm) => tpm.close()));
  }

  /** Standard base64 DER SPKI of the AK (what `trusted_ak` lists). */
  get akPublic(): string {
    return this.#akPublic;
  }

  /** A fresh ephemeral tee key for one flow. */
  newTeeKey(): FlowTeeKey {
    const ecdh = createECDH('prime256v1');
    const pub = ecdh.generateKeys();
    return { ecdh, jwk: { kty: 'EC', crv: 'P-256', alg: 'ECDH-ES+A256KW', x: pub.toString('base64url', 1, 33), y: pub.toString('base64url', 33, 65) } };
  }

  /** The POST /attest body: a fresh quote over HASH(nonce, tee key), as Trustee's `tpm` evidence. */
  async attestationBody(nonce: string, teeKey: FlowTeeKey): Promise<string> {
    const digest = runtimeDataDigest({ nonce, teePubkey: teeKey.jwk, additionalEvidence: '' });
    const quote = await this.#tpm.quote(this.#ak, 'sha256', ALL_PCRS, fitReportData(digest, TPM_REPORT_DATA_BYTES));
    const evidence = {
      ak_public: this.#akPublic,
      tpm_quote: { message: Buffer.from(quote.message).toString('base64'), signature: Buffer.from(quote.signature).toString('base64'), pcrs: this.#pcrs },
    };
    return JSON.stringify({ 'runtime-data': { nonce, 'tee-pubkey': teeKey.jwk }, 'tee-evidence': { primary_evidence: evidence, additional_evidence: '' } });
  }

  /**
   * Decrypt the KBS's ECDH-ES+A256KW / A256GCM JWE with the flow's tee key. Throws when anything
   * does not check out (header, key unwrap integrity, GCM tag): the benchmark counts it as an error.
   */
  decrypt(jwe: FlatJwe, teeKey: FlowTeeKey): Buffer {
    const header = JSON.parse(Buffer.from(jwe.protected, 'base64url').toString('utf8')) as { alg?: string; enc?: string; epk?: { crv?: string; x?: string; y?: string } };
    if (header.alg !== 'ECDH-ES+A256KW' || header.enc !== 'A256GCM' || header.epk?.crv !== 'P-256') throw new Error('unexpected JWE header');
    const epk = Buffer.concat([Buffer.from([4]), Buffer.from(header.epk.x ?? '', 'base64url'), Buffer.from(header.epk.y ?? '', 'base64url')]);
    // computeSecret decodes the point and refuses one that is not on the curve.
    const z = teeKey.ecdh.computeSecret(epk);
    const kek = createHash('sha256').update(ROUND_1).update(z).update(KDF_OTHER_INFO).digest();
    const unwrap = createDecipheriv('id-aes256-wrap', kek, AES_KW_IV);
    const cek = Buffer.concat([unwrap.update(Buffer.from(jwe.encrypted_key, 'base64url')), unwrap.final()]);
    const gcm = createDecipheriv('aes-256-gcm', cek, Buffer.from(jwe.iv, 'base64url'), { authTagLength: 16 });
    gcm.setAAD(Buffer.from(jwe.protected, 'ascii'));
    gcm.setAuthTag(Buffer.from(jwe.tag, 'base64url'));
    return Buffer.concat([gcm.update(Buffer.from(jwe.ciphertext, 'base64url')), gcm.final()]);
  }

}
