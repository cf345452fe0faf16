import { X509Certificate } from 'node:crypto';
import { pemCertificates } from '../snp/trust-anchors.js';
import { INTEL_SGX_ROOT_CA_PEM } from './intel-root.js';

declare const tdxTrustAnchorsBrand: unique symbol;

/** Parsed Intel root certificates. Build once with {@link createTdxTrustAnchors}. */
export interface TdxTrustAnchors {
  readonly [tdxTrustAnchorsBrand]: true;
  readonly roots: readonly X509Certificate[];
}

/**
 * Build Intel trust anchors from DER certificates: each must be a self-signed CA (Intel's SGX Root
 * CA, or a test root). Evidence never adds anchors: the root a quote carries is ignored and its
 * intermediate must verify under one of these.
 *
 * @throws TypeError when a certificate is not a self-signed CA (a misconfiguration).
 */
export function createTdxTrustAnchors(certificates: readonly Uint8Array[]): TdxTrustAnchors {
  if (!Array.isArray(certificates) || certificates.length === 0) throw new TypeError('Intel trust anchors: at least one root certificate is needed');
  const roots = certificates.map((der, i) => {
    let cert: X509Certificate;
    try {
      cert = new X509Certificate(Buffer.from(der));
    } catch (cause) {
      throw new TypeError(`Intel trust anchor #${i + 1} is not a DER X.509 certificate`, { cause });
    }
    if (!cert.ca || !cert.checkIssued(cert) || !cert.verify(cert.publicKey)) throw new TypeError(`Intel trust anchor #${i + 1} is not a self-signed CA`);
    return cert;
  });
  return Object.freeze({ roots: Object.freeze(roots) }) as unknown as TdxTrustAnchors;
}

let builtin: TdxTrustAnchors | undefined;

/** Intel's SGX Root CA shipped in this package (see `intel-root.ts` for its source). */
export function builtinTdxTrustAnchors(): TdxTrustAnchors {
  builtin ??= createTdxTrustAnchors(pemCertificates(INTEL_SGX_ROOT_CA_PEM));
  return builtin;
}
