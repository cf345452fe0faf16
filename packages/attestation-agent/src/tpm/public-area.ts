/**
 * TPM2B_PUBLIC wire bytes from the TPM (or the agent's state files) read through
 * `@keyhold/verifier`'s decoder — the one TPM public-area parser of the code base — with its
 * refusals reported as the TPM layer's TPM_BAD_RESPONSE.
 */
import { IdentityError, nameOfPublic, parseTpm2bPublic, tpmPublicToSpkiDer, type TpmPublic } from '@keyhold/verifier/tpm-keys';
import { TpmError } from '../errors.js';

function decoded<T>(what: string, fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    // SECURITY: a public area the verifier's parser refuses (truncated, oversized, unknown
    // algorithm, point off the curve) is never used as a key (TPM 2.0 Part 2 §12.2.4).
    if (err instanceof IdentityError) throw new TpmError('TPM_BAD_RESPONSE', `${what}: ${err.message}`, { cause: err });
    throw err;
  }
}

/** The decoded public area of TPM2B_PUBLIC bytes. */
export function decodePublicArea(tpm2bPublic: Uint8Array): TpmPublic {
  return decoded('TPM2B_PUBLIC', () => parseTpm2bPublic(tpm2bPublic));
}

/** TPM Name of the object (nameAlg ‖ H_nameAlg(TPMT_PUBLIC), TPM 2.0 Part 1 §16). */
export function publicAreaName(tpm2bPublic: Uint8Array): Uint8Array {
  return decoded('TPM2B_PUBLIC', () => nameOfPublic(parseTpm2bPublic(tpm2bPublic)));
}

/** DER SubjectPublicKeyInfo of a TPM2B_PUBLIC (what Trustee's `ak_public` carries). */
export function tpm2bPublicToSpkiDer(tpm2bPublic: Uint8Array): Uint8Array {
  return decoded('TPM2B_PUBLIC', () => tpmPublicToSpkiDer(parseTpm2bPublic(tpm2bPublic)));
}
