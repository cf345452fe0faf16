import { exportJWK, generateKeyPair, type CryptoKey } from 'jose';
import type { TeePubkey } from '@keyhold/protocol';

export type TeeKeyType = 'ec' | 'rsa';

/** An ephemeral key pair the attester binds into its evidence; secrets come back wrapped to it. */
export interface TeeKeyPair {
  readonly publicJwk: TeePubkey;
  readonly privateKey: CryptoKey;
  readonly alg: 'ECDH-ES+A256KW' | 'RSA-OAEP-256';
}

/** EC P-256 with ECDH-ES+A256KW (default) or RSA-3072 with RSA-OAEP-256. The private key never leaves memory. */
export async function generateTeeKeyPair(type: TeeKeyType = 'ec'): Promise<TeeKeyPair> {
  const alg = type === 'ec' ? 'ECDH-ES+A256KW' : 'RSA-OAEP-256';
  const { publicKey, privateKey } = await generateKeyPair(alg, type === 'ec' ? { crv: 'P-256' } : { modulusLength: 3072 });
  const jwk = await exportJWK(publicKey);
  const publicJwk: TeePubkey =
    type === 'ec'
      ? { kty: 'EC', crv: 'P-256', alg, x: jwk.x!, y: jwk.y! }
      : { kty: 'RSA', alg, n: jwk.n!, e: jwk.e! };
  return { publicJwk, privateKey, alg };
}
