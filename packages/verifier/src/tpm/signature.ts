import { VerifierError } from '../errors.js';
import { TPM_ALG_SHA256, TPM_ALG_SHA384, type QuoteHashAlgorithm } from './pcr-bank.js';
import { TpmReader } from './quote/tpm-reader.js';

export const TPM_ALG_RSASSA = 0x0014;
export const TPM_ALG_RSAPSS = 0x0016;
export const TPM_ALG_ECDSA = 0x0018;

/** Largest signature accepted: TPM2B_PUBLIC_KEY_RSA for RSA-4096 (Part 2 §11.2.4.5). */
const MAX_RSA_SIGNATURE_BYTES = 512;
/** Largest ECC parameter accepted: TPM2B_ECC_PARAMETER for P-521 (Part 2 §11.2.5.1). */
const MAX_ECC_PARAMETER_BYTES = 66;

/** A decoded TPMT_SIGNATURE. **Unverified**: it has not been checked against any key. */
export type UnverifiedSignature =
  | {
      readonly scheme: 'rsassa' | 'rsapss';
      readonly hash: QuoteHashAlgorithm;
      /** The RSA signature (TPM2B_PUBLIC_KEY_RSA buffer). */
      readonly signature: Uint8Array;
    }
  | {
      readonly scheme: 'ecdsa';
      readonly hash: QuoteHashAlgorithm;
      /** Big-endian integers as the TPM marshalled them (TPM2B_ECC_PARAMETER buffers). */
      readonly r: Uint8Array;
      readonly s: Uint8Array;
    };

function hashFromAlgId(algId: number): QuoteHashAlgorithm {
  if (algId === TPM_ALG_SHA256) return 'sha256';
  if (algId === TPM_ALG_SHA384) return 'sha384';
  // SECURITY: stops signatures over SHA-1 (chosen-prefix collisions let an attacker pair a
  // signed quote with a different TPMS_ATTEST) and over hashes this verifier does not implement
  // (TCG Algorithm Registry; NIST SP 800-131A rev2 disallows SHA-1 for signatures).
  throw new VerifierError('TPM_UNSUPPORTED_ALGORITHM', `TPMT_SIGNATURE: hash algorithm 0x${algId.toString(16).padStart(4, '0')} is not accepted (SHA-256 or SHA-384 only)`);
}

/**
 * Decode a marshalled TPMT_SIGNATURE (TPM 2.0 Part 2 §11.3.4) of scheme RSASSA, RSAPSS or ECDSA
 * with SHA-256 or SHA-384. The structure must fill `bytes` exactly.
 *
 * @throws VerifierError `TPM_TRUNCATED`, `TPM_LENGTH_EXCEEDED`, `TPM_TRAILING_BYTES`,
 *   `TPM_UNSUPPORTED_ALGORITHM` (any other scheme, e.g. HMAC, ECDAA, SM2, ECSCHNORR, NULL; any
 *   other hash, e.g. SHA-1).
 */
export function decodeUnverifiedSignature(bytes: Uint8Array): UnverifiedSignature {
  const r = new TpmReader(bytes);
  const sigAlg = r.u16('TPMT_SIGNATURE.sigAlg');
  let out: UnverifiedSignature;
  if (sigAlg === TPM_ALG_RSASSA || sigAlg === TPM_ALG_RSAPSS) {
    const hash = hashFromAlgId(r.u16('TPMS_SIGNATURE_RSA.hash'));
    const signature = r.tpm2b(MAX_RSA_SIGNATURE_BYTES, 'TPMS_SIGNATURE_RSA.sig');
    out = { scheme: sigAlg === TPM_ALG_RSASSA ? 'rsassa' : 'rsapss', hash, signature };
  } else if (sigAlg === TPM_ALG_ECDSA) {
    const hash = hashFromAlgId(r.u16('TPMS_SIGNATURE_ECC.hash'));
    const sigR = r.tpm2b(MAX_ECC_PARAMETER_BYTES, 'TPMS_SIGNATURE_ECC.signatureR');
    const sigS = r.tpm2b(MAX_ECC_PARAMETER_BYTES, 'TPMS_SIGNATURE_ECC.signatureS');
    out = { scheme: 'ecdsa', hash, r: sigR, s: sigS };
  } else {
    // SECURITY: stops schemes whose verification this module does not implement from being
    // mis-parsed or silently accepted (e.g. HMAC "signatures" need no private key; NULL signs
    // nothing) (Part 2 §11.3.4, TPMU_SIGNATURE).
    throw new VerifierError('TPM_UNSUPPORTED_ALGORITHM', `TPMT_SIGNATURE: scheme 0x${sigAlg.toString(16).padStart(4, '0')} is not accepted (RSASSA, RSAPSS, ECDSA only)`);
  }
  r.end('TPMT_SIGNATURE');
  return out;
}
