import { FlattenedEncrypt, importJWK, type CryptoKey } from 'jose';
import { TeePubkeySchema, type ResourceResponse, type TeePubkey } from '@keyhold/protocol';
import { KbsError } from '../errors.js';

const EC_ALG = 'ECDH-ES+A256KW';
const RSA_ALG = 'RSA-OAEP-256';

/**
 * Encrypt a secret to the tee public key bound into the evidence, as a flattened JWE with A256GCM.
 * EC keys use ECDH-ES+A256KW, RSA keys RSA-OAEP-256. RSA1_5 is refused (padding-oracle prone).
 */
export async function wrapSecret(secret: Uint8Array, teePubkey: unknown): Promise<ResourceResponse> {
  const parsed = TeePubkeySchema.safeParse(teePubkey);
  // SECURITY: only a well-formed public JWK is used; a token without one releases nothing.
  if (!parsed.success) throw new KbsError('JWE_FAILED', 'attestation carries no usable tee-pubkey');
  const jwk: TeePubkey = parsed.data;
  const alg = jwk.kty === 'EC' ? EC_ALG : RSA_ALG;
  // SECURITY: the key's own `alg` must agree with the one we use; a downgrade to RSA1_5 or a
  // mismatched algorithm is refused (algorithm confusion).
  if (jwk.alg !== undefined && jwk.alg !== alg) throw new KbsError('JWE_FAILED', `tee-pubkey alg must be ${alg}`);
  let key: CryptoKey | Uint8Array;
  try {
    key = await importJWK({ ...jwk, alg }, alg);
  } catch (cause) {
    throw new KbsError('JWE_FAILED', 'tee-pubkey is not a valid public key', { cause });
  }
  if (jwk.kty === 'RSA') {
    const bits = (key as { algorithm?: { modulusLength?: number } }).algorithm?.modulusLength;
    // SECURITY: refuses weak RSA wrapping keys (factorable moduli).
    if (bits !== undefined && bits < 2048) throw new KbsError('JWE_FAILED', 'tee-pubkey RSA modulus must be at least 2048 bits');
  }
  const jwe = await new FlattenedEncrypt(secret).setProtectedHeader({ alg, enc: 'A256GCM' }).encrypt(key);
  if (jwe.encrypted_key === undefined || jwe.iv === undefined || jwe.tag === undefined) {
    throw new KbsError('JWE_FAILED', 'JWE encryption produced an incomplete object');
  }
  return { protected: jwe.protected ?? '', encrypted_key: jwe.encrypted_key, iv: jwe.iv, ciphertext: jwe.ciphertext, tag: jwe.tag };
}
