import type { AttestationPolicyDocument, ResourcePolicyDocument } from './document.js';

const PCR_NAME = '"^pcr[0-9]{2}$"';

/**
 * The built-in attestation policy (id `default`, version 0), used until an owner stores one.
 * It runs only on claims of evidence the verifier accepted (quote signature, nonce binding, PCR
 * digest, trusted AK), so a TPM quote that got this far is affirming unless reference values say
 * otherwise:
 * - instance-identity 2 when the AK is in `reference.trusted_ak` (or no list is given; the verifier
 *   already refuses untrusted AKs), 97 when it is not;
 * - hardware 2 for TPM evidence;
 * - configuration 2 when every `pcrNN` reference list contains the quoted PCR value (hex,
 *   case-insensitive), 96 when one does not, 0 when no `pcrNN` reference is set;
 * - status: contraindicated if any component ≥ 96, warning if any ≥ 32, affirming when
 *   instance-identity and hardware are 2, none otherwise (AR4SI tiers).
 */
export const DEFAULT_ATTESTATION_POLICY: AttestationPolicyDocument = {
  id: 'default',
  type: 'cel',
  kind: 'attestation',
  description: 'Affirming when the TPM evidence verified and PCR values match the pcrNN reference values given',
  rules: {
    vector: {
      'instance-identity':
        '!has(claims.tpm) ? 0 : !has(claims.tpm.ak_public) ? 97 : (!has(reference.trusted_ak) || claims.tpm.ak_public in reference.trusted_ak) ? 2 : 97',
      hardware: 'has(claims.tpm) ? 2 : 0',
      configuration:
        `!reference.exists(k, k.matches(${PCR_NAME})) ? 0 : ` +
        `reference.all(k, !k.matches(${PCR_NAME}) || (has(claims.tpm) && k in claims.tpm && ` +
        'reference[k].exists(v, string(v).lowerAscii() == string(claims.tpm[k]).lowerAscii()))) ? 2 : 96',
    },
    status:
      'vector.exists(c, vector[c] >= 96) ? "contraindicated" : vector.exists(c, vector[c] >= 32) ? "warning" : ' +
      '(vector["instance-identity"] == 2 && vector["hardware"] == 2) ? "affirming" : "none"',
  },
};

/** Releases to any verified token. */
export const ALLOW_ALL_RESOURCE_POLICY: ResourcePolicyDocument = {
  id: 'allow-all',
  type: 'cel',
  kind: 'resource',
  description: 'Release to any holder of a verified attestation token',
  rule: 'true',
};

/** Releases nothing. */
export const DENY_ALL_RESOURCE_POLICY: ResourcePolicyDocument = {
  id: 'deny-all',
  type: 'cel',
  kind: 'resource',
  description: 'Release nothing',
  rule: 'false',
};

/** The default resource policy (version 0 until an owner stores one): the token must be affirming. */
export const AFFIRMING_RESOURCE_POLICY: ResourcePolicyDocument = {
  id: 'affirming',
  type: 'cel',
  kind: 'resource',
  description: 'Release only when the attestation token is affirming',
  rule: 'ear.status == "affirming"',
};

export const DEFAULT_RESOURCE_POLICY = AFFIRMING_RESOURCE_POLICY;
