import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { CvmError } from '../errors.js';
import { VerifierError } from '../../errors.js';
import { appraiseAzTdxVtpmEvidence } from './appraise.js';
import { builtinTdxTrustAnchors } from './trust-anchors.js';

// Corpus: Trustee's az-tdx-vtpm test data (confidential-containers/trustee@78962cd4
// deps/verifier/test_data/az-tdx-vtpm; see ../shared/corpus/README.md). Only v1 is published for
// TDX. Its quote was made with report data "challenge"; Trustee's test asserts tpm.pcr00 = 782b20b1…
const repoRoot = fileURLToPath(new URL('../../../../../', import.meta.url));
const dir = path.resolve(repoRoot, '../shared/corpus/cvm-vtpm/az-tdx-vtpm');
const have = existsSync(dir);
if (!have) console.warn(`skipping az-tdx-vtpm corpus tests: ${dir} is absent`);

const CHALLENGE = new Uint8Array(Buffer.from('challenge'));
// Inside every certificate's validity (PCK leaf: 2023-09-13..2030-09-13).
const NOW = new Date('2025-06-01T00:00:00Z');
const load = (name: string): any => JSON.parse(readFileSync(path.join(dir, name), 'utf8'));
const opts = (reportData = CHALLENGE) => ({ expectedReportData: reportData, trustAnchors: builtinTdxTrustAnchors(), now: NOW });

function codeOf(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    if (err instanceof CvmError || err instanceof VerifierError) return err.code;
    throw err;
  }
  return 'no error';
}

describe.skipIf(!have)('appraiseAzTdxVtpmEvidence on Trustee test evidence', () => {
  it('verifies v1 with report data "challenge": quote chain to the shipped Intel root, TCB unknown without collateral', () => {
    const r = appraiseAzTdxVtpmEvidence(load('evidence-v1.json'), opts());
    expect(r.evidenceVersion).toBe(1);
    expect(r.claims['report_data']).toBe('6368616c6c656e6765');
    expect((r.claims['tpm'] as Record<string, string>)['pcr00']).toBe('782b20b10f55cc46e2142cc2145d548698073e5beb82752c8d7f9279f0d8a273');
    expect(r.claims['tcb_status']).toBe('unknown');
    expect(r.tcb.status).toBe('unknown');
    expect(r.debugAllowed).toBe(false);
  });

  describe('refusals, each with a specific reason', () => {
    const v1 = (): any => load('evidence-v1.json');
    const enc = (b: Uint8Array): string => Buffer.from(b).toString('base64').replaceAll('+', '-').replaceAll('/', '_');
    const quoteOf = (): Buffer => Buffer.from(v1().td_quote, 'base64url');
    const withQuote = (q: Uint8Array): any => ({ ...v1(), td_quote: enc(q) });
    const flipQuote = (offset: number): any => {
      const q = quoteOf();
      q[offset] = (q[offset] as number) ^ 0x01;
      return withQuote(q);
    };
    const run = (ev: unknown, o: Partial<ReturnType<typeof opts>> = {}): string => codeOf(() => appraiseAzTdxVtpmEvidence(ev, { ...opts(), ...o }));
    // Quote offsets: header 0, body 48 (MRTD at 48+136, REPORTDATA at 48+520), signature data at 636:
    // signature 636, attestation key 700, certification data 770: QE report 770, its signature 1154,
    // auth data size 1218, auth data 1220, PCK chain from 1258.
    it('a flipped byte in the TD body (MRTD, report data) or the quote signature breaks the quote signature', () => {
      expect(run(flipQuote(48 + 136))).toBe('TDX_QUOTE_SIGNATURE_INVALID');
      expect(run(flipQuote(48 + 520))).toBe('TDX_QUOTE_SIGNATURE_INVALID');
      expect(run(flipQuote(636 + 3))).toBe('TDX_QUOTE_SIGNATURE_INVALID');
      expect(run(flipQuote(20))).toBe('TDX_QUOTE_SIGNATURE_INVALID');
    });

    it('a flipped byte in the QE report or its signature, the attestation key or the auth data is refused', () => {
      expect(run(flipQuote(770 + 320))).toBe('TDX_QE_REPORT_SIGNATURE_INVALID');
      expect(run(flipQuote(1154 + 10))).toBe('TDX_QE_REPORT_SIGNATURE_INVALID');
      expect(run(flipQuote(700 + 5))).toBe('TDX_QE_BINDING_INVALID');
      expect(run(flipQuote(1220 + 1))).toBe('TDX_QE_BINDING_INVALID');
    });

    it('a changed PCK certificate, a foreign or absent root, or an expired chain is refused', () => {
      const q = quoteOf();
      const at = q.indexOf(Buffer.from('-----BEGIN CERTIFICATE-----', 'latin1')) + 28 + 300;
      q[at] = (q[at] as number) === 0x41 ? 0x42 : 0x41;
      expect(run(withQuote(q))).toBe('TDX_PCK_UNTRUSTED');
      expect(run(v1(), { trustAnchors: { roots: [] } as never })).toBe('TDX_NO_TRUST_ANCHORS');
      expect(run(v1(), { now: new Date('2031-01-01T00:00:00Z') })).toBe('TDX_CERT_EXPIRED');
    });

    it('a changed HCL variable data byte is refused by the TD report_data binding', () => {
      const ev = v1();
      const b = Buffer.from(ev.hcl_report, 'base64url');
      const at = b.indexOf(Buffer.from('vmUniqueId', 'latin1')) + 14;
      b[at] = (b[at] as number) === 0x30 ? 0x31 : 0x30;
      expect(run({ ...ev, hcl_report: enc(b) })).toBe('TDX_REPORT_DATA_MISMATCH');
      // Trustee's test_verify_hcl_var_data_failure: byte 0x0880 + 1.
      const t = Buffer.from(ev.hcl_report, 'base64url');
      t[0x0880] = (t[0x0880] as number) + 1;
      expect(run({ ...ev, hcl_report: enc(t) })).toBe('TDX_REPORT_DATA_MISMATCH');
    });

    it('a changed vTPM quote and a wrong report data are refused', () => {
      const ev = v1();
      const msg = Buffer.from(ev.tpm_quote.message, 'hex');
      msg[40] = (msg[40] as number) ^ 1;
      expect(run({ ...ev, tpm_quote: { ...ev.tpm_quote, message: msg.toString('hex') } })).toBe('QUOTE_SIGNATURE_INVALID');
      expect(run(v1(), { expectedReportData: new Uint8Array(Buffer.from('egnellahc')) })).toBe('QUOTE_EXTRA_DATA_MISMATCH');
    });

    it('malformed quotes and HCL reports of the wrong type are refused', () => {
      const q = quoteOf();
      expect(run(withQuote(Buffer.concat([q, Buffer.from([1])])))).toBe('TDX_QUOTE_MALFORMED');
      const v5 = Buffer.from(q);
      v5.writeUInt16LE(5, 0);
      expect(run(withQuote(v5))).toBe('TDX_QUOTE_MALFORMED');
      const sgx = Buffer.from(q);
      sgx.writeUInt32LE(0, 4);
      expect(run(withQuote(sgx))).toBe('TDX_QUOTE_MALFORMED');
      expect(run(withQuote(q.subarray(0, 2000)))).toBe('TDX_QUOTE_MALFORMED');
      const longSig = Buffer.from(q);
      longSig.writeUInt32LE(100000, 632);
      expect(run(withQuote(longSig))).toBe('TDX_QUOTE_MALFORMED');
      // Certification data of another type (6 → 5) and a PCK chain of another type (5 → 3).
      const cert = Buffer.from(q);
      cert.writeUInt16LE(5, 764);
      expect(run(withQuote(cert))).toBe('TDX_QUOTE_MALFORMED');
      const pckType = Buffer.from(q);
      pckType.writeUInt16LE(3, 1252);
      expect(run(withQuote(pckType))).toBe('TDX_QUOTE_MALFORMED');
      // A certification data size that does not match what it contains.
      const slack = Buffer.from(q);
      slack.writeUInt32LE(slack.readUInt32LE(766) - 1, 766);
      expect(run(withQuote(slack))).toBe('TDX_QUOTE_MALFORMED');
      const snp = JSON.parse(readFileSync(path.resolve(dir, '../az-snp-vtpm/evidence-v1.json'), 'utf8'));
      expect(run({ ...v1(), hcl_report: snp.hcl_report })).toBe('HCL_REPORT_TYPE_MISMATCH');
    });
  });
});

