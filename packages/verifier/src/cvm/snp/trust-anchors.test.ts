import { createHash, X509Certificate } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { AMD_SEV_ROOTS, AMD_SEV_ROOT_FINGERPRINTS } from './amd-roots.js';
import { builtinSnpTrustAnchors, createSnpTrustAnchors, pemCertificates } from './trust-anchors.js';
import { builtinTdxTrustAnchors, createTdxTrustAnchors } from '../tdx/trust-anchors.js';
import { INTEL_SGX_ROOT_CA_FINGERPRINT, INTEL_SGX_ROOT_CA_PEM } from '../tdx/intel-root.js';

const sha256 = (d: Uint8Array): string => createHash('sha256').update(d).digest('hex');

describe('shipped trust anchors', () => {
  it('are byte for byte the AMD certificates pinned when they were added', () => {
    for (const r of AMD_SEV_ROOTS) {
      const [ask] = pemCertificates(r.askPem);
      const [ark] = pemCertificates(r.arkPem);
      expect(sha256(ask!), `${r.generation} ASK`).toBe(AMD_SEV_ROOT_FINGERPRINTS[`${r.generation}.ask`]);
      expect(sha256(ark!), `${r.generation} ARK`).toBe(AMD_SEV_ROOT_FINGERPRINTS[`${r.generation}.ark`]);
      const arkCert = new X509Certificate(Buffer.from(ark!));
      const askCert = new X509Certificate(Buffer.from(ask!));
      expect(arkCert.subject).toContain(`CN=ARK-${r.generation}`);
      expect(askCert.subject).toContain(`CN=SEV-${r.generation}`);
      expect(arkCert.verify(arkCert.publicKey)).toBe(true);
      expect(askCert.verify(arkCert.publicKey)).toBe(true);
    }
    expect(builtinSnpTrustAnchors().chains.map((c) => c.generation)).toEqual(['Milan', 'Genoa', 'Turin']);
  });

  it('is Intel\'s SGX Root CA as pinned (self-signed, fingerprint 44a0196b…)', () => {
    const [der] = pemCertificates(INTEL_SGX_ROOT_CA_PEM);
    expect(sha256(der!)).toBe(INTEL_SGX_ROOT_CA_FINGERPRINT);
    expect(INTEL_SGX_ROOT_CA_FINGERPRINT).toBe('44a0196b2b99f889b8e149e95b807a350e7424964399e885a7cbb8ccfab674d3');
    expect(builtinTdxTrustAnchors().roots).toHaveLength(1);
  });

  it('refuses configurations that are not ARK/ASK pairs or self-signed roots (TypeError)', () => {
    const milan = AMD_SEV_ROOTS[0]!;
    const genoa = AMD_SEV_ROOTS[1]!;
    // An ASK without its ARK, an ARK alone, an ASK with another generation's ARK, garbage.
    expect(() => createSnpTrustAnchors(pemCertificates(milan.askPem))).toThrow(TypeError);
    expect(() => createSnpTrustAnchors(pemCertificates(milan.arkPem))).toThrow(TypeError);
    expect(() => createSnpTrustAnchors([...pemCertificates(milan.askPem), ...pemCertificates(genoa.arkPem)])).toThrow(TypeError);
    expect(() => createSnpTrustAnchors([new Uint8Array([0x30, 0x03, 0x02, 0x01, 0x01])])).toThrow(TypeError);
    expect(() => createTdxTrustAnchors([])).toThrow(TypeError);
    // An AMD ASK is not a self-signed root.
    expect(() => createTdxTrustAnchors(pemCertificates(milan.askPem))).toThrow(TypeError);
  });
});
