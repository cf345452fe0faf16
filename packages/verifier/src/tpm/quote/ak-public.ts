import { createPublicKey, type KeyObject } from 'node:crypto';
import { VerifierError } from '../../errors.js';

/** Largest AK SubjectPublicKeyInfo accepted (an RSA-4096 SPKI is 550 bytes). */
export const MAX_AK_SPKI_BYTES = 2048;
const MIN_RSA_BITS = 2048;
const MAX_RSA_BITS = 4096;

/** An AK public key that passed import checks. */
export type AkPublicKey =
  | { readonly kind: 'rsa'; readonly key: KeyObject; readonly modulusBits: number }
  | { readonly kind: 'ec'; readonly key: KeyObject; readonly curve: 'P-256' | 'P-384'; readonly fieldBytes: number };

const CURVES: Readonly<Record<string, { curve: 'P-256' | 'P-384'; fieldBytes: number }>> = {
  prime256v1: { curve: 'P-256', fieldBytes: 32 },
  secp384r1: { curve: 'P-384', fieldBytes: 48 },
};

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.byteLength === b.byteLength && Buffer.from(a).equals(Buffer.from(b));
}

/**
 * AKs that passed every check below, by their exact DER bytes. Importing and re-encoding a key
 * costs about a millisecond with OpenSSL 3 while a KBS sees the same few AKs again and again;
 * only keys that were accepted are cached, and the cache is bounded (oldest entry evicted).
 */
const accepted = new Map<string, AkPublicKey>();
const MAX_CACHED_AKS = 256;

/**
 * Import an AK public key from DER SubjectPublicKeyInfo: RSA 2048–4096 bits (rsaEncryption) or
 * EC P-256 / P-384. The DER must be canonical (it re-encodes to the same bytes).
 *
 * @throws VerifierError `QUOTE_INVALID_AK`, `TPM_UNSUPPORTED_ALGORITHM`, `TPM_LENGTH_EXCEEDED`.
 */
export function importAkPublicKey(spkiDer: Uint8Array): AkPublicKey {
  // SECURITY: bounds the work done on a hostile key blob before ASN.1 parsing.
  if (spkiDer.byteLength > MAX_AK_SPKI_BYTES) {
    throw new VerifierError('TPM_LENGTH_EXCEEDED', `AK public key: ${spkiDer.byteLength} bytes exceeds ${MAX_AK_SPKI_BYTES}`);
  }
  const cacheKey = Buffer.from(spkiDer).toString('base64');
  const cached = accepted.get(cacheKey);
  if (cached !== undefined) return cached;
  const ak = checkAkPublicKey(spkiDer);
  if (accepted.size >= MAX_CACHED_AKS) accepted.delete(accepted.keys().next().value as string);
  accepted.set(cacheKey, ak);
  return ak;
}

function checkAkPublicKey(spkiDer: Uint8Array): AkPublicKey {
  let key: KeyObject;
  try {
    key = createPublicKey({ key: Buffer.from(spkiDer), format: 'der', type: 'spki' });
  } catch (cause) {
    // SECURITY: stops malformed ASN.1 from being used as a key (X.509 SubjectPublicKeyInfo, RFC 5280 §4.1).
    throw new VerifierError('QUOTE_INVALID_AK', 'AK public key is not a DER SubjectPublicKeyInfo', { cause });
  }
  // SECURITY: stops two different byte strings naming the same key (trailing data, non-DER
  // encodings), which would defeat byte comparison against a trusted-AK list (X.690 DER).
  if (!sameBytes(key.export({ format: 'der', type: 'spki' }), spkiDer)) {
    throw new VerifierError('QUOTE_INVALID_AK', 'AK public key is not canonical DER');
  }
  const details = key.asymmetricKeyDetails ?? {};
  if (key.asymmetricKeyType === 'rsa') {
    const bits = details.modulusLength ?? 0;
    // SECURITY: stops factorable short RSA keys and oversized keys (work bound) (NIST SP 800-57
    // Part 1 §5.6; TCG TPM 2.0 Keys for Device Identity and Attestation: AK RSA 2048+).
    if (bits < MIN_RSA_BITS || bits > MAX_RSA_BITS) {
      throw new VerifierError('TPM_UNSUPPORTED_ALGORITHM', `AK RSA modulus of ${bits} bits is outside ${MIN_RSA_BITS}..${MAX_RSA_BITS}`);
    }
    return { kind: 'rsa', key, modulusBits: bits };
  }
  if (key.asymmetricKeyType === 'ec') {
    const curve = CURVES[details.namedCurve ?? ''];
    // SECURITY: stops weak or unexpected curves; only the TPM's NIST P-256 / P-384 are accepted
    // (TCG Algorithm Registry, TPM_ECC_NIST_P256 / P384).
    if (curve === undefined) {
      throw new VerifierError('TPM_UNSUPPORTED_ALGORITHM', 'AK EC curve is not P-256 or P-384');
    }
    return { kind: 'ec', key, ...curve };
  }
  // SECURITY: stops key types a TPM AK cannot have (Ed25519, DSA, DH, RSA-PSS-restricted SPKI).
  throw new VerifierError('TPM_UNSUPPORTED_ALGORITHM', 'AK key type is not RSA or EC');
}
