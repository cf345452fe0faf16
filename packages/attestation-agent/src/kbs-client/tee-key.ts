import { exportJWK, flattenedDecrypt, generateKeyPair, type CryptoKey } from 'jose';
import type { ResourceResponse, TeePubkey } from '@keyhold/protocol';

/** Ephemeral software tee keys, held in this process (Trustee compatible; the default). */
export type SoftwareTeeKeyType = 'ec' | 'rsa';
/** Every kind of tee key: software, or created in the TPM and certified by the AK (`tpm-rsa`, `tpm-ecc`). */
export type TeeKeyType = SoftwareTeeKeyType | 'tpm-rsa' | 'tpm-ecc';

/** An ephemeral key pair the attester binds into its evidence; secrets come back wrapped to it. */
export interface TeeKeyPair {
  readonly publicJwk: TeePubkey;
  readonly privateKey: CryptoKey;
  readonly alg: 'ECDH-ES+A256KW' | 'RSA-OAEP-256';
}

/** EC P-256 with ECDH-ES+A256KW (default) or RSA-3072 with RSA-OAEP-256. The private key never leaves memory. */
export async function generateTeeKeyPair(type: SoftwareTeeKeyType = 'ec'): Promise<TeeKeyPair> {
  const alg = type === 'ec' ? 'ECDH-ES+A256KW' : 'RSA-OAEP-256';
  const { publicKey, privateKey } = await generateKeyPair(alg, type === 'ec' ? { crv: 'P-256' } : { modulusLength: 3072 });
  const jwk = await exportJWK(publicKey);
  const publicJwk: TeePubkey =
    type === 'ec'
      ? { kty: 'EC', crv: 'P-256', alg, x: jwk.x!, y: jwk.y! }
      : { kty: 'RSA', alg, n: jwk.n!, e: jwk.e! };
  return { publicJwk, privateKey, alg };
}

/** The key a released secret is wrapped to, wherever its private half lives. */
export interface TeeKey {
  /** The public key as the runtime data's `tee-pubkey` carries it. */
  readonly publicJwk: TeePubkey;
  /** Decrypt a resource JWE wrapped to this key (A256GCM content). */
  decrypt(jwe: ResourceResponse): Promise<Uint8Array>;
  /**
   * Evidence members proving where the private key lives, bound to the evidence's report data
   * (TPM keys: the AK's certification, `tee_key`). Absent for software keys.
   */
  residencyEvidence?(reportData: Uint8Array): Promise<Record<string, unknown>>;
}

/** Makes one fresh tee key per attestation. */
export interface TeeKeySource {
  create(): Promise<TeeKey>;
}

/** Software tee keys of `type` (decrypted with jose). */
export function softwareTeeKeys(type: SoftwareTeeKeyType = 'ec'): TeeKeySource {
  return {
    async create() {
      const pair = await generateTeeKeyPair(type);
      return {
        publicJwk: pair.publicJwk,
        async decrypt(jwe) {
          const { plaintext, protectedHeader } = await flattenedDecrypt(jwe, pair.privateKey, {
            keyManagementAlgorithms: [pair.alg],
            contentEncryptionAlgorithms: ['A256GCM'],
          });
          if (protectedHeader?.enc !== 'A256GCM') throw new Error('unexpected enc');
          return plaintext;
        },
      };
    },
  };
}
