/**
 * Signature check of a TPM-generated structure (TPMS_ATTEST of a quote or a certification) with an
 * AK public key. Shared by `verifyQuote` and `verifyTeeKeyCertification`, so both accept exactly the
 * same schemes and encodings.
 */
import { constants, verify as cryptoVerify } from 'node:crypto';
import type { AkPublicKey } from './quote/ak-public.js';
import type { UnverifiedSignature } from './signature.js';

/** r‖s, each left-padded to the curve's field size (IEEE P1363), or undefined when one does not fit. */
function ecdsaP1363(sig: { r: Uint8Array; s: Uint8Array }, fieldBytes: number): Uint8Array | undefined {
  const out = new Uint8Array(2 * fieldBytes);
  for (const [i, v] of [sig.r, sig.s].entries()) {
    let start = 0;
    while (start < v.length && v[start] === 0) start++;
    const len = v.length - start;
    if (len > fieldBytes) return undefined;
    out.set(v.subarray(start), i * fieldBytes + fieldBytes - len);
  }
  return out;
}

/** True when the signature's scheme is one the AK's key type can produce (ECDSA ↔ EC, RSA* ↔ RSA). */
export function signatureFitsAk(sig: UnverifiedSignature, ak: AkPublicKey): boolean {
  return (sig.scheme === 'ecdsa') === (ak.kind === 'ec');
}

/** True when `sig` verifies over `message` with the AK; false for any failure (never throws). */
export function attestSignatureVerifies(message: Uint8Array, sig: UnverifiedSignature, ak: AkPublicKey): boolean {
  try {
    if (sig.scheme === 'ecdsa') {
      if (ak.kind !== 'ec') return false;
      const p1363 = ecdsaP1363(sig, ak.fieldBytes);
      if (p1363 === undefined) return false;
      return cryptoVerify(sig.hash, message, { key: ak.key, dsaEncoding: 'ieee-p1363' }, p1363);
    }
    if (ak.kind !== 'rsa') return false;
    if (sig.scheme === 'rsassa') {
      return cryptoVerify(sig.hash, message, { key: ak.key, padding: constants.RSA_PKCS1_PADDING }, sig.signature);
    }
    // TPMs sign RSAPSS with salt length = digest length (or the maximum, in FIPS 186-4 mode);
    // AUTO recovers the salt length from the signature, accepting both.
    return cryptoVerify(
      sig.hash,
      message,
      { key: ak.key, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: constants.RSA_PSS_SALTLEN_AUTO },
      sig.signature,
    );
  } catch {
    return false;
  }
}
