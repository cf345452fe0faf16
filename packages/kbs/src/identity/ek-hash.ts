import { IdentityStoreError } from './errors.js';

const EK_HASH = /^[0-9a-f]{64}$/;

/**
 * Normalise an EK hash (hex SHA-256 of the EK's DER SPKI) to lower case, or throw.
 * SECURITY: the hash becomes a file name; anything but 64 hex characters could traverse paths
 * ("../") or alias entries, so it is rejected before touching the filesystem (CWE-22).
 */
export function normaliseEkHash(hash: string): string {
  const h = typeof hash === 'string' ? hash.toLowerCase() : '';
  if (!EK_HASH.test(h)) throw new IdentityStoreError('EK_HASH_INVALID', 'EK hash must be 64 hex characters');
  return h;
}
