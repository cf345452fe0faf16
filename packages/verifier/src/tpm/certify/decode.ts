import { MAX_NAME_BYTES, TPM_ST_ATTEST_CERTIFY, readAttestHeader, type UnverifiedAttestHeader } from '../attest.js';

/**
 * A decoded TPMS_ATTEST of type TPM_ST_ATTEST_CERTIFY (what TPM2_Certify returns as `certifyInfo`).
 * **Unverified**: nothing here has been checked against a signature; only
 * `verifyTeeKeyCertification` turns it into something to rely on.
 */
export interface UnverifiedCertifyAttest extends UnverifiedAttestHeader {
  readonly type: typeof TPM_ST_ATTEST_CERTIFY;
  /** TPMS_CERTIFY_INFO (Part 2 §10.12.3). */
  readonly attested: {
    /** TPM2B_NAME of the certified object: nameAlg ‖ H(TPMT_PUBLIC). */
    readonly name: Uint8Array;
    /** TPM2B_NAME: the object's qualified name (its hierarchy path). */
    readonly qualifiedName: Uint8Array;
  };
}

/**
 * Decode a marshalled TPMS_ATTEST holding a certification (TPM 2.0 Part 2 §10.12.12 with
 * TPMS_CERTIFY_INFO). Every length is checked before it is used and the structure must fill
 * `bytes` exactly. The magic value is returned, not checked.
 *
 * @throws VerifierError `TPM_TRUNCATED`, `TPM_LENGTH_EXCEEDED`, `TPM_TRAILING_BYTES`,
 *   `TPM_MALFORMED`, `CERTIFY_WRONG_TYPE`.
 */
export function decodeUnverifiedCertifyAttest(bytes: Uint8Array): UnverifiedCertifyAttest {
  const { r, header } = readAttestHeader(bytes, { type: TPM_ST_ATTEST_CERTIFY, name: 'TPM_ST_ATTEST_CERTIFY', wrongTypeCode: 'CERTIFY_WRONG_TYPE' });
  const name = r.tpm2b(MAX_NAME_BYTES, 'TPMS_CERTIFY_INFO.name');
  const qualifiedName = r.tpm2b(MAX_NAME_BYTES, 'TPMS_CERTIFY_INFO.qualifiedName');
  r.end('TPMS_ATTEST');
  return { ...header, type: TPM_ST_ATTEST_CERTIFY, attested: { name, qualifiedName } };
}
