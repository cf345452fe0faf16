import { X509Certificate } from 'node:crypto';
import { AMD_SEV_ROOTS } from './amd-roots.js';

/** One AMD signing chain: an ARK (self-signed root) and the ASK it signed. */
export interface AmdSigningChain {
  /** The generation named by the ARK's common name (`ARK-Milan` → `Milan`). */
  readonly generation: string;
  readonly ark: X509Certificate;
  readonly ask: X509Certificate;
}

declare const snpTrustAnchorsBrand: unique symbol;

/** Parsed, checked AMD trust anchors. Build once (at start) with {@link createSnpTrustAnchors}. */
export interface SnpTrustAnchors {
  readonly [snpTrustAnchorsBrand]: true;
  readonly chains: readonly AmdSigningChain[];
}

const PEM_BLOCK = /-----BEGIN CERTIFICATE-----([A-Za-z0-9+/=\s]+?)-----END CERTIFICATE-----/g;

/** The DER certificates in a PEM text (ARK/ASK bundles as AMD serves them). */
export function pemCertificates(pem: string): Uint8Array[] {
  return [...pem.matchAll(PEM_BLOCK)].map((m) => new Uint8Array(Buffer.from((m[1] ?? '').replace(/\s+/g, ''), 'base64')));
}

function commonName(cert: X509Certificate): string | undefined {
  return /(?:^|\n)CN=([^\n]*)/.exec(cert.subject)?.[1];
}

function selfSigned(cert: X509Certificate): boolean {
  return cert.checkIssued(cert) && cert.verify(cert.publicKey);
}

/**
 * Build AMD trust anchors from DER certificates: every self-signed CA among them is an ARK, every
 * other one must be an ASK signed by one of those ARKs. The owner's configuration (or
 * {@link builtinSnpTrustAnchors}) is the only source of anchors; evidence never adds any.
 *
 * @throws TypeError when the certificates do not form ARK/ASK pairs (a misconfiguration).
 */
export function createSnpTrustAnchors(certificates: readonly Uint8Array[]): SnpTrustAnchors {
  if (!Array.isArray(certificates)) throw new TypeError('certificates must be an array of DER certificates');
  const parsed = certificates.map((der, i) => {
    try {
      const cert = new X509Certificate(Buffer.from(der));
      if (!cert.raw.equals(Buffer.from(der))) throw new Error('trailing data');
      return cert;
    } catch (cause) {
      throw new TypeError(`AMD trust anchor #${i + 1} is not a DER X.509 certificate`, { cause });
    }
  });
  const arks = parsed.filter((c) => selfSigned(c));
  const chains: AmdSigningChain[] = [];
  for (const [i, cert] of parsed.entries()) {
    if (arks.includes(cert)) continue;
    const ark = arks.find((a) => cert.checkIssued(a) && cert.verify(a.publicKey));
    if (ark === undefined) throw new TypeError(`AMD trust anchor #${i + 1} (${commonName(cert) ?? 'no CN'}) is not an ASK signed by a configured ARK`);
    if (!cert.ca || !ark.ca) throw new TypeError(`AMD trust anchor #${i + 1} or its ARK is not a CA certificate`);
    const cn = commonName(ark) ?? '';
    chains.push(Object.freeze({ generation: cn.startsWith('ARK-') ? cn.slice(4) : cn, ark, ask: cert }));
  }
  if (chains.length === 0) throw new TypeError('AMD trust anchors hold no ASK signed by an ARK');
  return Object.freeze({ chains: Object.freeze(chains) }) as unknown as SnpTrustAnchors;
}

let builtin: SnpTrustAnchors | undefined;

/** The AMD roots shipped in this package (Milan, Genoa, Turin; see `amd-roots.ts` for their sources). */
export function builtinSnpTrustAnchors(): SnpTrustAnchors {
  builtin ??= createSnpTrustAnchors(AMD_SEV_ROOTS.flatMap((r) => [...pemCertificates(r.askPem), ...pemCertificates(r.arkPem)]));
  return builtin;
}
