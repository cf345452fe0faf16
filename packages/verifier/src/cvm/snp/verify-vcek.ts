import type { X509Certificate } from 'node:crypto';
import { CvmError } from '../errors.js';
import type { SnpTrustAnchors } from './trust-anchors.js';
import type { UnverifiedVcek } from './vcek.js';

/** The chain a VCEK was found to belong to. */
export interface VerifiedVcekChain {
  /** Processor generation of the chain (`Milan`, `Genoa`, `Turin`, or a test chain's name). */
  readonly generation: string;
  /** Lowercase hex SHA-256 of the ARK's DER. */
  readonly arkFingerprint: string;
}

function inValidity(cert: X509Certificate, now: Date): boolean {
  const t = now.getTime();
  return t >= Date.parse(cert.validFrom) && t <= Date.parse(cert.validTo);
}

/**
 * Verify that the VCEK was issued by an ASK among the trust anchors (whose ARK signed it, checked
 * when the anchors were built) and that VCEK, ASK and ARK are valid at `now`.
 *
 * Guarantees: the VCEK's signature verifies under a configured ASK; the path is VCEK → ASK → ARK
 * with the ARK self-signed; each certificate is inside its validity period; the VCEK's product name
 * names the chain's generation. Not checked: AMD's CRLs (revoked ASKs/VCEKs) — AMD publishes them
 * at KDS, which cannot be reached from here.
 *
 * @throws CvmError `SNP_VCEK_UNTRUSTED`, `SNP_CERT_EXPIRED`, `SNP_VCEK_MISMATCH`, `SNP_NO_TRUST_ANCHORS`.
 */
export function verifyVcekChain(vcek: UnverifiedVcek, anchors: SnpTrustAnchors, now: Date): VerifiedVcekChain {
  if (!(now instanceof Date) || Number.isNaN(now.getTime())) throw new TypeError('now must be a valid Date');
  // SECURITY: without anchors nothing can be trusted; fail closed rather than accept any VCEK.
  if (anchors?.chains === undefined || anchors.chains.length === 0) throw new CvmError('SNP_NO_TRUST_ANCHORS', 'no AMD trust anchors are configured');
  const chain = anchors.chains.find((c) => {
    try {
      return vcek.node.checkIssued(c.ask) && vcek.node.verify(c.ask.publicKey);
    } catch {
      return false;
    }
  });
  // SECURITY: only a VCEK signed by AMD's ASK proves the signing key lives in a genuine AMD chip;
  // a self-made key could sign any report (AMD VCEK spec; ARK → ASK → VCEK).
  if (chain === undefined) throw new CvmError('SNP_VCEK_UNTRUSTED', 'VCEK is not signed by a trusted AMD ASK');
  for (const [name, cert] of [['VCEK', vcek.node], ['ASK', chain.ask], ['ARK', chain.ark]] as const) {
    // SECURITY: an expired certificate no longer vouches for anything (RFC 5280 §6.1.3 (a)(2)).
    if (!inValidity(cert, now)) throw new CvmError('SNP_CERT_EXPIRED', `${name} certificate is outside its validity period`);
  }
  // SECURITY: the generation decides the TCB layout the report is read with; a VCEK naming another
  // generation than its signing chain is inconsistent (VCEK spec productName).
  if (!vcek.productName.toLowerCase().startsWith(chain.generation.toLowerCase())) {
    throw new CvmError('SNP_VCEK_MISMATCH', `VCEK product ${vcek.productName} does not belong to the ${chain.generation} chain`);
  }
  return { generation: chain.generation, arkFingerprint: chain.ark.fingerprint256.replaceAll(':', '').toLowerCase() };
}
