/**
 * Object names (TPM 2.0 Part 1 §16): name = nameAlg (u16) || H_nameAlg(TPMT_PUBLIC).
 * The TPMT_PUBLIC is decoded first, so only a well-formed area gets a name.
 */
import { createHash } from 'node:crypto';
import { IdentityError } from '../identity/errors.js';
import { concatBytes, u16be } from '../identity/internal/byte-reader.js';
import { hashAlgId } from '../identity/internal/tpm-alg.js';
import { parseTpmtPublic, type TpmPublic } from './public.js';

/** Name of the object described by the exact TPMT_PUBLIC bytes. */
export function computeName(tpmtPublicBytes: Uint8Array): Uint8Array {
  return nameOfPublic(parseTpmtPublic(tpmtPublicBytes));
}

/** Name of an already decoded public area (hashes its original `tpmtPublic` bytes). */
export function nameOfPublic(pub: TpmPublic): Uint8Array {
  // SECURITY: node has no SM3; refusing is better than hashing with the wrong algorithm.
  if (pub.nameAlg === 'sm3_256') throw new IdentityError('TPM_PUBLIC_UNSUPPORTED', 'TPM public area: nameAlg sm3_256');
  const digest = createHash(pub.nameAlg).update(pub.tpmtPublic).digest();
  return concatBytes(u16be(hashAlgId(pub.nameAlg)), new Uint8Array(digest));
}
