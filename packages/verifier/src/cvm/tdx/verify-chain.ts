import { X509Certificate } from 'node:crypto';
import { CvmError, type CvmErrorCode } from '../errors.js';
import { pemCertificates } from '../snp/trust-anchors.js';
import type { TdxTrustAnchors } from './trust-anchors.js';

/** Most certificates read from a carried chain (leaf, intermediate, root; one spare). */
const MAX_CHAIN_CERTS = 4;
/**
 * Chains parsed before, by their PEM text (a KBS sees the same platforms again and again; parsing
 * costs about a millisecond per certificate). Only parsing is cached; every check runs each time.
 */
const parsedChains = new Map<string, X509Certificate[]>();
const MAX_CACHED_CHAINS = 256;

function signedBy(cert: X509Certificate, issuer: X509Certificate): boolean {
  try {
    return cert.checkIssued(issuer) && cert.verify(issuer.publicKey);
  } catch {
    return false;
  }
}

function inValidity(cert: X509Certificate, now: Date): boolean {
  const t = now.getTime();
  return t >= Date.parse(cert.validFrom) && t <= Date.parse(cert.validTo);
}

/**
 * Verify a carried Intel certificate chain (PEM, leaf first: a PCK chain from a quote, or a TCB
 * signing chain from collateral) up to one of the configured Intel roots. The chain's own root, if
 * present, is not trusted for being there: the walk stops at the first certificate a configured
 * root signed.
 *
 * Guarantees: each signature on the path verifies under the next certificate's key, the last under
 * a configured root; each issuer is a CA; the leaf is not; every certificate on the path and the
 * root are inside their validity period at `now`. Not checked: Intel's CRLs (see the collateral).
 *
 * @throws CvmError `untrusted` (malformed or unanchored chain), `TDX_CERT_EXPIRED`, `TDX_NO_TRUST_ANCHORS`.
 */
export function verifyIntelChain(pem: string, anchors: TdxTrustAnchors, now: Date, untrusted: CvmErrorCode, what: string): X509Certificate[] {
  // SECURITY: without anchors nothing can be trusted; fail closed.
  if (anchors?.roots === undefined || anchors.roots.length === 0) throw new CvmError('TDX_NO_TRUST_ANCHORS', 'no Intel trust anchors are configured');
  const ders = pemCertificates(pem);
  // SECURITY: bounds the work on a hostile chain, and an empty chain certifies nothing.
  if (ders.length === 0 || ders.length > MAX_CHAIN_CERTS) throw new CvmError(untrusted, `${what} has ${ders.length} certificates`);
  let certs = parsedChains.get(pem);
  if (certs === undefined) {
    try {
      certs = ders.map((d) => new X509Certificate(Buffer.from(d)));
    } catch (cause) {
      throw new CvmError(untrusted, `${what} holds an undecodable certificate`, { cause });
    }
    if (parsedChains.size >= MAX_CACHED_CHAINS) parsedChains.delete(parsedChains.keys().next().value as string);
    parsedChains.set(pem, certs);
  }
  const path: X509Certificate[] = [certs[0] as X509Certificate];
  let root: X509Certificate | undefined;
  for (let i = 0; root === undefined; i++) {
    const current = path[path.length - 1] as X509Certificate;
    root = anchors.roots.find((r) => signedBy(current, r));
    if (root !== undefined) break;
    const next = certs[i + 1];
    // SECURITY: every link must be a CA signature; a chain that ends before reaching a configured
    // Intel root proves nothing (PCK certificate profile: leaf ← Platform/Processor CA ← Root CA).
    if (next === undefined || !next.ca || !signedBy(current, next)) throw new CvmError(untrusted, `${what} does not chain to a trusted Intel root`);
    path.push(next);
  }
  // SECURITY: a CA certificate presented as the leaf would let a CA key pose as a platform key.
  if ((path[0] as X509Certificate).ca) throw new CvmError(untrusted, `${what} leaf is a CA certificate`);
  for (const cert of [...path, root]) {
    // SECURITY: expired certificates vouch for nothing now (RFC 5280 §6.1.3 (a)(2)).
    if (!inValidity(cert, now)) throw new CvmError('TDX_CERT_EXPIRED', `a certificate of the ${what} is outside its validity period`);
  }
  return path;
}
