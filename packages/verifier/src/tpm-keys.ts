/**
 * `@keyhold/verifier/tpm-keys`: the TPM public-area parser, names, SPKI conversion and tee-key
 * checks alone, without the event-log, IMA and X.509 modules of the package's root entry. For
 * short-lived processes (the agent's CLI, started once per layer key by ocicrypt) that must not
 * load and initialise what they never call (issue 11: time-to-secret).
 */
export { IdentityError, type IdentityErrorCode } from './identity/errors.js';
export { VerifierError } from './errors.js';
export { parseTpm2bPublic, parseTpmtPublic } from './tpm/public.js';
export type { TpmPublic, TpmRsaPublic, TpmEccPublic, TpmObjectAttributes, TpmHashName, TpmEccCurve } from './tpm/public.js';
export { computeName, nameOfPublic } from './tpm/name.js';
export { tpmPublicToSpkiDer, tpmPublicToKeyObject } from './identity/spki.js';
export { checkTeeKeyAttributes } from './tpm/certify/tee-key-attributes.js';
export { policyPcrDigest } from './tpm/policy-pcr.js';
export type { PolicyPcrInput, PolicyHashAlgorithm } from './tpm/policy-pcr.js';
