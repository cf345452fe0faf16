// The vendor CA store Keylime ships (../shared/corpus/ek-certs/tpm_cert_store, 51 PEM files, see
// its README.json): every CA whose issuer is also in the store must chain to it; the others must
// not chain anywhere. `now` is chosen inside every validity period on the expected path.
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { IdentityError } from './errors.js';
import { validateCertificatePath } from './ek-certificate-path.js';
import { X509Certificate } from './internal/x509.js';

const repoRoot = fileURLToPath(new URL('../../../../', import.meta.url));
const corpus = path.resolve(repoRoot, '../shared/corpus/ek-certs');
const haveCorpus = existsSync(path.join(corpus, 'README.json'));

interface FileInfo { subject: string; issuer: string; not_before: string; not_after: string; self_signed_name: boolean }

describe.skipIf(!haveCorpus)('vendor EK CA store (skipped when ../shared/corpus is absent)', () => {
  const readme = haveCorpus ? (JSON.parse(readFileSync(path.join(corpus, 'README.json'), 'utf8')) as { files: Record<string, FileInfo> }) : { files: {} };
  const files = haveCorpus ? readdirSync(path.join(corpus, 'tpm_cert_store')).sort() : [];
  const certs = new Map<string, X509Certificate>();
  for (const f of files) {
    const pem = readFileSync(path.join(corpus, 'tpm_cert_store', f), 'utf8').match(/-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/);
    if (pem) certs.set(f, new X509Certificate(pem[0]));
  }
  const store = [...certs.values()];

  it('decodes all 51 certificates', () => {
    expect(files.length).toBe(51);
    expect(certs.size).toBe(51);
  });

  /** Expected path by README names: file, its issuer file, ... until self-signed or unknown. */
  function expectedPath(f: string): string[] {
    const out = [f];
    for (;;) {
      const cur = readme.files[out[out.length - 1] as string] as FileInfo;
      if (cur.self_signed_name) return out;
      const issuer = Object.keys(readme.files).find((g) => !out.includes(g) && (readme.files[g] as FileInfo).subject === cur.issuer);
      if (issuer === undefined) return out;
      out.push(issuer);
    }
  }

  for (const f of files) {
    const info = readme.files[f] as FileInfo | undefined;
    it(`${f}: chains to its issuer in the store exactly when README says the issuer is present`, async () => {
      expect(info).toBeDefined();
      if (!info) return;
      const cert = certs.get(f) as X509Certificate;
      const raw = Buffer.from(cert.rawData);
      // Remove the certificate itself (and byte-identical duplicates) so it must chain upwards.
      const others = store.filter((c) => !Buffer.from(c.rawData).equals(raw));
      const want = expectedPath(f);
      const dates = want.map((g) => readme.files[g] as FileInfo);
      const now = new Date(Math.max(...dates.map((d) => Date.parse(d.not_before))) + 86_400_000);
      expect(now.getTime()).toBeLessThan(Math.min(...dates.map((d) => Date.parse(d.not_after))));
      if (want.length < 2) {
        await expect(validateCertificatePath(cert, others, now, { allowCaLeaf: true })).rejects.toMatchObject({ code: 'EK_CERT_UNKNOWN_CA' });
        return;
      }
      const got = await validateCertificatePath(cert, others, now, { allowCaLeaf: true });
      expect(got.map((c) => c.subject).length).toBe(want.length);
      expect(Buffer.from((got[1] as X509Certificate).rawData).equals(Buffer.from((certs.get(want[1] as string) as X509Certificate).rawData)) || got[1]?.subject === cert.issuer).toBe(true);
      // The same path outside the issuer's validity fails as expired.
      const late = new Date(Math.min(...dates.map((d) => Date.parse(d.not_after))) + 86_400_000);
      await expect(validateCertificatePath(cert, others, late, { allowCaLeaf: true })).rejects.toBeInstanceOf(IdentityError);
      // Without allowCaLeaf a CA certificate is never accepted as an EK certificate.
      await expect(validateCertificatePath(cert, others, now)).rejects.toMatchObject({ code: 'EK_CERT_CHAIN_INVALID' });
    });
  }
});
