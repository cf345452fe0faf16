import { X509Certificate } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { CvmError } from '../errors.js';
import { VerifierError } from '../../errors.js';
import { isVerifiedCvmClaims } from '../claims.js';
import { appraiseAzSnpVtpmEvidence } from './appraise.js';
import { builtinSnpTrustAnchors, createSnpTrustAnchors, pemCertificates } from './trust-anchors.js';
import { AMD_SEV_ROOTS } from './amd-roots.js';

// Corpus: Trustee's az-snp-vtpm test data (confidential-containers/trustee@78962cd4
// deps/verifier/test_data/az-snp-vtpm; see ../shared/corpus/README.md). Facts asserted there:
// v0/v1 quotes were made with report data "challenge"; v1's claims.tpm.pcr00 is e15c4479…
const repoRoot = fileURLToPath(new URL('../../../../../', import.meta.url));
const dir = path.resolve(repoRoot, '../shared/corpus/cvm-vtpm/az-snp-vtpm');
const have = existsSync(dir);
if (!have) console.warn(`skipping az-snp-vtpm corpus tests: ${dir} is absent`);

const CHALLENGE = new Uint8Array(Buffer.from('challenge'));
// v2's quote and HCL user-data carry a 48-byte (SHA-384) runtime-data digest; its preimage is not
// published, so the value is the fixture's (the test shows that the three places agree).
const V2_REPORT_DATA = new Uint8Array(Buffer.from('982f5c6e45df0ed3f10b6f60b02f0c8390e281300f3805e2279c16168cd6ae9aa398f647caa2338748cd0fd9f5f819ef', 'hex'));
// Inside every certificate's validity (VCEKs: 2023-05-02..2030-05-02 in v0, 2025-01-28..2032-01-28 in v1/v2).
const NOW = new Date('2025-06-01T00:00:00Z');
const PCR00_V1 = 'e15c44796beabf46abcec7c57e590942041e47497e4ec27571c8b7664f48dced';

const load = (name: string): any => JSON.parse(readFileSync(path.join(dir, name), 'utf8'));
const opts = (reportData = CHALLENGE) => ({ expectedReportData: reportData, trustAnchors: builtinSnpTrustAnchors(), now: NOW });

function codeOf(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    if (err instanceof CvmError || err instanceof VerifierError) return err.code;
    throw err;
  }
  return 'no error';
}

describe.skipIf(!have)('appraiseAzSnpVtpmEvidence on Trustee test evidence', () => {
  it('verifies v1 with report data "challenge" and the facts Trustee asserts', () => {
    const r = appraiseAzSnpVtpmEvidence(load('evidence-v1.json'), opts());
    expect(r.evidenceVersion).toBe(1);
    expect(r.claims['report_data']).toBe('6368616c6c656e6765');
    expect((r.claims['tpm'] as Record<string, string>)['pcr00']).toBe(PCR00_V1);
    expect(r.chain.generation).toBe('Milan');
    expect(isVerifiedCvmClaims(r.claims)).toBe(true);
  });

  it('verifies v0 (byte arrays, PEM VCEK)', () => {
    const r = appraiseAzSnpVtpmEvidence(load('evidence-v0.json'), opts());
    expect(r.evidenceVersion).toBe(0);
    expect(r.claims['report_data']).toBe('6368616c6c656e6765');
  });

  it('verifies v2 with its 48-byte report data in the quote and in HCL user-data', () => {
    const r = appraiseAzSnpVtpmEvidence(load('evidence-v2.json'), opts(V2_REPORT_DATA));
    expect(r.evidenceVersion).toBe(2);
    expect(r.claims['report_data']).toBe(Buffer.from(V2_REPORT_DATA).toString('hex'));
  });

  describe('refusals, each with a specific reason', () => {
    const v1 = (): any => load('evidence-v1.json');
    const hcl = (ev: any): Buffer => Buffer.from(ev.hcl_report, 'base64url');
    const withHcl = (ev: any, b: Buffer): any => ({ ...ev, hcl_report: b.toString('base64').replaceAll('+', '-').replaceAll('/', '_') });
    const flipHcl = (offset: number, xor = 0x01): any => {
      const ev = v1();
      const b = hcl(ev);
      b[offset] = (b[offset] as number) ^ xor;
      return withHcl(ev, b);
    };
    const run = (ev: unknown, reportData = CHALLENGE): string => codeOf(() => appraiseAzSnpVtpmEvidence(ev, opts(reportData)));
    // HCL report offsets: hardware report at 32, variable data at 1236 (see hcl/decode.ts).
    const SNP = 32;
    const VAR = 1236;

    it('a flipped byte in the hardware report (measurement, reported TCB as in Trustee\'s test, VMPL) breaks its signature', () => {
      expect(run(flipHcl(SNP + 0x90))).toBe('SNP_SIGNATURE_INVALID');
      expect(run(flipHcl(0x01a6))).toBe('SNP_SIGNATURE_INVALID');
      expect(run(flipHcl(SNP + 0x30))).toBe('SNP_SIGNATURE_INVALID');
      expect(run(flipHcl(SNP + 0x50))).toBe('SNP_SIGNATURE_INVALID');
    });

    it('a flipped byte in the report signature is refused; a non-zero high byte of r is malformed', () => {
      expect(run(flipHcl(SNP + 0x2a0 + 5))).toBe('SNP_SIGNATURE_INVALID');
      expect(run(flipHcl(SNP + 0x2a0 + 72 + 40))).toBe('SNP_SIGNATURE_INVALID');
      expect(run(flipHcl(SNP + 0x2a0 + 60))).toBe('SNP_REPORT_MALFORMED');
    });

    it('a flipped byte in the VCEK is refused (signature, then TBS, then its key)', () => {
      const vcek = (mutate: (d: Buffer) => void): any => {
        const ev = v1();
        const d = Buffer.from(ev.vcek, 'base64url');
        mutate(d);
        return { ...ev, vcek: d.toString('base64').replaceAll('+', '-').replaceAll('/', '_') };
      };
      expect(run(vcek((d) => void (d[d.length - 10] = (d[d.length - 10] as number) ^ 1)))).toBe('SNP_VCEK_UNTRUSTED');
      // The validity period (TBS) of the certificate.
      const pos = (d: Buffer): number => {
        const from = new Date(new X509Certificate(d).validFrom);
        const yymmdd = [from.getUTCFullYear() % 100, from.getUTCMonth() + 1, from.getUTCDate()].map((n) => String(n).padStart(2, '0')).join('');
        return d.indexOf(Buffer.from(yymmdd, 'latin1'));
      };
      expect(run(vcek((d) => void (d[pos(d) + 1] = 0x34)))).toBe('SNP_VCEK_UNTRUSTED');
      expect(run({ ...v1(), vcek: 'MIIB' })).toBe('SNP_VCEK_MALFORMED');
    });

    it('a changed HCL variable data byte is refused: outside the AK by the report_data binding, inside it by the quote', () => {
      const ev = v1();
      const b = hcl(ev);
      const at = b.indexOf(Buffer.from('vmUniqueId', 'latin1')) + 14;
      b[at] = 0x30 + ((b[at] as number) === 0x30 ? 1 : 0);
      expect(run(withHcl(ev, b))).toBe('HCL_VAR_DATA_MISMATCH');
      // Trustee's test_verify_report_data_failure: byte 0x06e0 + 1 (inside HCLEkPub).
      const t = hcl(v1());
      t[0x06e0] = (t[0x06e0] as number) + 1;
      expect(run(withHcl(v1(), t))).toBe('HCL_VAR_DATA_MISMATCH');
      // A changed AK modulus character: the quote no longer verifies with it.
      const k = hcl(v1());
      const n = k.indexOf(Buffer.from('"n":"', 'latin1'), k.indexOf(Buffer.from('HCLAkPub', 'latin1'))) + 20;
      k[n] = (k[n] as number) === 0x41 ? 0x42 : 0x41;
      expect(run(withHcl(v1(), k))).toBe('QUOTE_SIGNATURE_INVALID');
      // Trustee's test_verify_akpub_failure: byte 0x0540 = 0 breaks the JSON.
      expect(run(flipHcl(0x0540, hcl(v1())[0x0540] as number))).toBe('HCL_VAR_DATA_INVALID');
      expect(VAR).toBe(1236);
    });

    it('a changed vTPM quote, signature or PCR value, and a wrong report data are refused', () => {
      const ev = v1();
      const msg = Buffer.from(ev.tpm_quote.message, 'hex');
      msg[30] = (msg[30] as number) ^ 1;
      expect(run({ ...ev, tpm_quote: { ...ev.tpm_quote, message: msg.toString('hex') } })).toBe('QUOTE_SIGNATURE_INVALID');
      const sig = Buffer.from(ev.tpm_quote.signature, 'hex');
      sig[0] = (sig[0] as number) ^ 1;
      expect(run({ ...ev, tpm_quote: { ...ev.tpm_quote, signature: sig.toString('hex') } })).toBe('QUOTE_SIGNATURE_INVALID');
      const pcrs = [...ev.tpm_quote.pcrs];
      pcrs[0] = `${pcrs[0].slice(0, 63)}${pcrs[0].endsWith('0') ? '1' : '0'}`;
      expect(run({ ...ev, tpm_quote: { ...ev.tpm_quote, pcrs } })).toBe('QUOTE_PCR_DIGEST_MISMATCH');
      expect(run(v1(), new Uint8Array(Buffer.from('challengf')))).toBe('QUOTE_EXTRA_DATA_MISMATCH');
      expect(run(v1(), new Uint8Array(Buffer.from('egnellahc')))).toBe('QUOTE_EXTRA_DATA_MISMATCH');
      expect(run(load('evidence-v2.json'), CHALLENGE)).toBe('QUOTE_EXTRA_DATA_MISMATCH');
    });

    it('malformed HCL reports and evidence shapes are refused', () => {
      const ev = v1();
      expect(run(withHcl(ev, hcl(ev).subarray(0, 1000)))).toBe('HCL_REPORT_MALFORMED');
      expect(run(flipHcl(0))).toBe('HCL_REPORT_MALFORMED');
      expect(run(flipHcl(1216 + 8, 0x07))).toBe('HCL_REPORT_MALFORMED');
      const big = hcl(ev);
      big.writeUInt32LE(5000, 1216 + 16);
      expect(run(withHcl(ev, big))).toBe('HCL_REPORT_MALFORMED');
      expect(run({ ...ev, version: 3 })).toBe('CVM_EVIDENCE_MALFORMED');
      expect(run({ ...ev, hcl_report: ev.hcl_report.replace(/=+$/, '') })).toBe('CVM_EVIDENCE_MALFORMED');
      expect(run({ ...ev, tpm_quote: { ...ev.tpm_quote, pcrs: ev.tpm_quote.pcrs.slice(1) } })).toBe('CVM_EVIDENCE_MALFORMED');
      expect(run({ ...load('evidence-v0.json'), vcek: 'not pem' })).toBe('CVM_EVIDENCE_MALFORMED');
      expect(run(null)).toBe('CVM_EVIDENCE_MALFORMED');
      expect(run(load('../az-tdx-vtpm/evidence-v1.json'))).toBe('CVM_EVIDENCE_MALFORMED');
    });

    it('refuses everything without trust anchors, and with anchors of another generation only', () => {
      const genoa = AMD_SEV_ROOTS.find((r) => r.generation === 'Genoa')!;
      const onlyGenoa = createSnpTrustAnchors([...pemCertificates(genoa.askPem), ...pemCertificates(genoa.arkPem)]);
      expect(codeOf(() => appraiseAzSnpVtpmEvidence(v1(), { ...opts(), trustAnchors: onlyGenoa }))).toBe('SNP_VCEK_UNTRUSTED');
      expect(codeOf(() => appraiseAzSnpVtpmEvidence(v1(), { ...opts(), trustAnchors: { chains: [] } as never }))).toBe('SNP_NO_TRUST_ANCHORS');
      // v1's VCEK is valid 2025-01-28..2032-01-28.
      expect(codeOf(() => appraiseAzSnpVtpmEvidence(v1(), { ...opts(), now: new Date('2033-01-01T00:00:00Z') }))).toBe('SNP_CERT_EXPIRED');
      expect(codeOf(() => appraiseAzSnpVtpmEvidence(v1(), { ...opts(), now: new Date('2025-01-01T00:00:00Z') }))).toBe('SNP_CERT_EXPIRED');
    });

    it('throws TypeError for malformed options', () => {
      expect(() => appraiseAzSnpVtpmEvidence(v1(), { ...opts(), expectedReportData: new Uint8Array(0) })).toThrow(TypeError);
      expect(() => appraiseAzSnpVtpmEvidence(v1(), { ...opts(), expectedReportData: new Uint8Array(65) })).toThrow(TypeError);
      expect(() => appraiseAzSnpVtpmEvidence(v1(), { ...opts(), initDataDigest: new Uint8Array(48) })).toThrow(TypeError);
      expect(() => appraiseAzSnpVtpmEvidence(v1(), { ...opts(), now: new Date(NaN) })).toThrow(TypeError);
    });
  });
});

