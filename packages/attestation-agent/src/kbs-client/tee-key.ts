import { constants, createPublicKey, diffieHellman, generateKeyPair as generateNodeKeyPair, generateKeyPairSync, privateDecrypt } from 'node:crypto';
import { promisify } from 'node:util';
import { exportJWK, generateKeyPair, type CryptoKey } from 'jose';
import type { ResourceResponse, TeePubkey } from '@keyhold/protocol';
import { KbsClientError } from './errors.js';
import { decryptFlattenedJwe, type JweKeyAgreement } from './jwe-decrypt.js';

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
  /**
   * True when the private key lives in this process's memory (software keys): it decrypts without
   * the TPM, so a token bound to it can be used after the TPM session that attested has closed
   * (`run --resource-socket`). TPM-resident keys are flushed with their session.
   */
  readonly inProcess?: boolean;
}

/** Makes one fresh tee key per attestation. */
export interface TeeKeySource {
  create(): Promise<TeeKey>;
}

const RSA_TEE_KEY_BITS = 3072;

/**
 * Software tee keys of `type`: EC P-256 for ECDH-ES+A256KW only, or RSA-3072 for RSA-OAEP-256, the
 * key pair made and the key agreement done with node:crypto, the JWE decrypted by
 * {@link decryptFlattenedJwe}, as for TPM-resident keys (jose is the reference in the tests). jose
 * would load WebCrypto, ~10 ms of every CLI start that fetches one secret. The same keys and
 * algorithms as {@link generateTeeKeyPair}.
 */
export function softwareTeeKeys(type: SoftwareTeeKeyType = 'ec'): TeeKeySource {
  return {
    async create() {
      if (type === 'ec') {
        const { publicKey, privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
        const jwk = publicKey.export({ format: 'jwk' });
        const agreement: JweKeyAgreement = {
          kind: 'ecdh-es',
          crv: 'P-256',
          keyWrapOnly: true,
          // The point was checked to be on the curve by decryptFlattenedJwe; Z is its x coordinate.
          sharedSecret: async ({ x, y }) => {
            const epk = createPublicKey({ key: { kty: 'EC', crv: 'P-256', x: Buffer.from(x).toString('base64url'), y: Buffer.from(y).toString('base64url') }, format: 'jwk' });
            return new Uint8Array(diffieHellman({ privateKey, publicKey: epk }));
          },
        };
        return { publicJwk: { kty: 'EC', crv: 'P-256', alg: 'ECDH-ES+A256KW', x: jwk.x!, y: jwk.y! }, decrypt: (jwe) => decryptFlattenedJwe(jwe, agreement), inProcess: true };
      }
      // Off the event loop: RSA key generation takes a while.
      const { publicKey, privateKey } = await promisify(generateNodeKeyPair)('rsa', { modulusLength: RSA_TEE_KEY_BITS });
      const jwk = publicKey.export({ format: 'jwk' });
      const agreement: JweKeyAgreement = {
        kind: 'rsa-oaep-256',
        modulusBytes: RSA_TEE_KEY_BITS / 8,
        decryptKey: async (c) => {
          try {
            return new Uint8Array(privateDecrypt({ key: privateKey, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: 'sha256' }, c));
          } catch (cause) {
            // SECURITY: one error for every OAEP failure, whatever OpenSSL says (no padding oracle detail, RFC 8017 §7.1.2 note).
            throw new KbsClientError('JWE_DECRYPT_FAILED', 'could not decrypt the resource: the content key does not decrypt (wrong key or tampered encrypted_key)', { cause });
          }
        },
      };
      return { publicJwk: { kty: 'RSA', alg: 'RSA-OAEP-256', n: jwk.n!, e: jwk.e! }, decrypt: (jwe) => decryptFlattenedJwe(jwe, agreement), inProcess: true };
    },
  };
}
