/**
 * Certification path building and validation for EK certificates (RFC 5280 §6, narrowed to what
 * TPM vendor PKIs use). Internal to the EK certificate check; exported for its tests.
 *
 * Trust model: every certificate in the owner's store is a trust anchor (as in Keylime's
 * tpm_cert_store). The path is the certificate plus the issuers found in the store, walked until
 * a self-signed certificate or until no further issuer is in the store. Guarantees: each
 * signature on the path verifies under its issuer's key; each certificate on the path is inside
 * its validity period at `now`; each issuer is a CA allowed to sign certificates within its path
 * length; no certificate on the path carries a critical extension outside KNOWN_CRITICAL.
 * Not checked: revocation (TPM vendors publish no usable CRLs/OCSP for EKs), name constraints
 * and certificate policies (a certificate marking either critical is rejected instead).
 */
import { IdentityError } from './errors.js';
import { BasicConstraintsExtension, KeyUsageFlags, KeyUsagesExtension, X509ChainBuilder, type X509Certificate } from './internal/x509.js';

/**
 * Critical extensions Keyhold understands. SubjectAltName is critical on EK certificates with an
 * empty subject (TCG EK Credential Profile §3.2.9), certificatePolicies and extKeyUsage are critical
 * on several vendor CAs, and subjectDirectoryAttributes carries the TPM specification version.
 */
const KNOWN_CRITICAL: ReadonlySet<string> = new Set([
  '2.5.29.15', // keyUsage
  '2.5.29.19', // basicConstraints
  '2.5.29.17', // subjectAltName (TPM manufacturer/model/version directoryName)
  '2.5.29.32', // certificatePolicies (informational for EKs: no policy processing is claimed)
  '2.5.29.37', // extKeyUsage (tcg-kp-EKCertificate 2.23.133.8.1)
  '2.5.29.9', // subjectDirectoryAttributes (TPM specification, TCG EK Credential Profile §3.2.12)
]);

export interface CertificatePathOptions {
  /** Accept a CA certificate as the first element (used to validate store CAs themselves). */
  readonly allowCaLeaf?: boolean;
}

function sameCert(a: X509Certificate, b: X509Certificate): boolean {
  return Buffer.from(a.rawData).equals(Buffer.from(b.rawData));
}

function checkCriticalExtensions(cert: X509Certificate, position: string): void {
  for (const ext of cert.extensions) {
    // SECURITY: a critical extension the validator does not process must fail the path, or a
    // constraint the CA relied on (e.g. nameConstraints) would be silently ignored (RFC 5280 §4.2).
    if (ext.critical && !KNOWN_CRITICAL.has(ext.type)) {
      throw new IdentityError('EK_CERT_UNSUPPORTED_CRITICAL_EXTENSION', `${position} certificate has unsupported critical extension ${ext.type}`);
    }
  }
}

function checkValidity(cert: X509Certificate, now: Date, position: string): void {
  // SECURITY: certificates outside their validity period are not evidence of anything now; an
  // expired CA key may have been retired or compromised (RFC 5280 §6.1.3 (a)(2)).
  if (now.getTime() < cert.notBefore.getTime()) throw new IdentityError('EK_CERT_EXPIRED', `${position} certificate is not yet valid`);
  if (now.getTime() > cert.notAfter.getTime()) throw new IdentityError('EK_CERT_EXPIRED', `${position} certificate has expired`);
}

function checkIssuer(cert: X509Certificate, certsBelow: number, position: string): void {
  const bc = cert.getExtension(BasicConstraintsExtension);
  // SECURITY: only CA certificates may issue certificates; otherwise any end-entity key (even
  // another EK certificate's) could mint EK certificates (RFC 5280 §4.2.1.9, §6.1.4 (k)).
  if (bc === null || !bc.ca) throw new IdentityError('EK_CERT_CHAIN_INVALID', `${position} certificate is not a CA`);
  // SECURITY: pathLenConstraint bounds how many intermediates may follow (RFC 5280 §6.1.4 (m)).
  if (bc.pathLength !== undefined && certsBelow > bc.pathLength) {
    throw new IdentityError('EK_CERT_CHAIN_INVALID', `${position} certificate path length exceeded`);
  }
  const ku = cert.getExtension(KeyUsagesExtension);
  // SECURITY: a CA key restricted from certificate signing must not be accepted as an issuer (RFC 5280 §6.1.4 (n)).
  if (ku !== null && (ku.usages & KeyUsageFlags.keyCertSign) === 0) {
    throw new IdentityError('EK_CERT_CHAIN_INVALID', `${position} certificate may not sign certificates`);
  }
}

/**
 * Build and validate the path from `cert` to the store. Returns it leaf first.
 * Throws IdentityError EK_CERT_UNKNOWN_CA | EK_CERT_EXPIRED | EK_CERT_CHAIN_INVALID |
 * EK_CERT_UNSUPPORTED_CRITICAL_EXTENSION.
 */
export async function validateCertificatePath(
  cert: X509Certificate,
  store: readonly X509Certificate[],
  now: Date,
  options: CertificatePathOptions = {},
): Promise<X509Certificate[]> {
  if (!(now instanceof Date) || Number.isNaN(now.getTime())) throw new TypeError('now must be a valid Date');
  let path: X509Certificate[];
  try {
    path = [...(await new X509ChainBuilder({ certificates: [...store] }).build(cert))];
  } catch (err) {
    throw new IdentityError('EK_CERT_UNKNOWN_CA', 'certificate path could not be built', { cause: err });
  }
  // SECURITY: the certificate must be signed by a certificate the owner put in the store; a
  // self-signed or unknown-issuer certificate proves nothing about the TPM (TCG EK Credential
  // Profile §2.1; the chain builder only follows store certificates whose signature verifies).
  if (path.length < 2 || !store.some((s) => sameCert(s, path[path.length - 1] as X509Certificate))) {
    throw new IdentityError('EK_CERT_UNKNOWN_CA', 'certificate is not issued by a CA in the store');
  }
  const leaf = path[0] as X509Certificate;
  const leafBc = leaf.getExtension(BasicConstraintsExtension);
  // SECURITY: an EK certificate is an end-entity certificate; a CA certificate presented as an EK
  // certificate is a confused-deputy attempt (TCG EK Credential Profile §3.2.8: cA = FALSE).
  if (!options.allowCaLeaf && leafBc !== null && leafBc.ca) throw new IdentityError('EK_CERT_CHAIN_INVALID', 'EK certificate is a CA certificate');
  path.forEach((c, i) => {
    const position = i === 0 ? 'EK' : i === path.length - 1 ? 'anchor' : `issuer #${i}`;
    checkValidity(c, now, position);
    checkCriticalExtensions(c, position);
    if (i > 0) checkIssuer(c, i - 1, position);
  });
  return path;
}
