/**
 * How the node-certificate key is bound into an attestation: Trustee's `additional_evidence` string
 * carries `{"keyhold.node-key":{"spki-sha256":"<64 lowercase hex>"}}` (RFC 8785 canonical JSON), the
 * SHA-256 of the key's DER SubjectPublicKeyInfo. The runtime data the TPM quote covers is
 * `HASH(JCS({"additional-evidence", nonce, "tee-pubkey"}))`, so the quote signs the digest; the KBS
 * copies it into the token (`submods.cpu0["ear.veraison.annotated-evidence"]["keyhold.node-key"]`)
 * and `POST /kbs/v0/node-certificate` certifies only a CSR whose public key has that digest.
 */
import { jcs } from '@keyhold/protocol';

export const NODE_KEY_EVIDENCE_MEMBER = 'keyhold.node-key';

/** The `additional_evidence` text that binds the key whose SPKI has this SHA-256 (hex). */
export function nodeKeyAdditionalEvidence(spkiSha256: string): string {
  if (!/^[0-9a-f]{64}$/.test(spkiSha256)) throw new TypeError('nodeKeyAdditionalEvidence: spkiSha256 must be 64 lower-case hex digits');
  return jcs({ [NODE_KEY_EVIDENCE_MEMBER]: { 'spki-sha256': spkiSha256 } });
}
