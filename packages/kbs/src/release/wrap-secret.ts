import type { ResourceResponse } from '@keyhold/protocol';
import { encryptEcdhEsA256kw } from '../hot-path/jwe-ecdh-es-a256kw.js';
import { encryptRsaOaep256 } from '../hot-path/jwe-rsa-oaep-256.js';
import { importTeeKey } from '../hot-path/tee-key-import.js';

/**
 * Encrypt a secret to the tee public key bound into the evidence, as a flattened JWE with A256GCM.
 * EC keys use ECDH-ES+A256KW, RSA keys RSA-OAEP-256. RSA1_5 is refused (padding-oracle prone).
 * Synchronous node:crypto (the KBS's hot path; see src/hot-path), byte-compatible with jose's
 * `FlattenedEncrypt`; the key checks are `importTeeKey`'s. Failures are `JWE_FAILED` KbsErrors.
 */
export async function wrapSecret(secret: Uint8Array, teePubkey: unknown): Promise<ResourceResponse> {
  const key = importTeeKey(teePubkey);
  return key.kty === 'EC' ? encryptEcdhEsA256kw(secret, key) : encryptRsaOaep256(secret, key);
}
