import { createPublicKey } from 'node:crypto';
import { existsSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  azVtpmEvidence,
  buildHclReport,
  createSyntheticAmdChain,
  hclVariableData,
  startSwtpmVtpm,
  synthesizeSnpHclReport,
  type SwtpmVtpm,
  type SyntheticAmdChain,
  type SyntheticVcek,
  type VtpmQuoteParts,
} from '@keyhold/test-harness';
import { CvmError } from '../errors.js';
import { VerifierError } from '../../errors.js';
import { appraiseAzSnpVtpmEvidence } from './appraise.js';
import { createSnpTrustAnchors, type SnpTrustAnchors } from './trust-anchors.js';

/**
 * A SYNTHETIC AMD chain (test ARK/ASK/VCEK from @keyhold/test-harness, injected here as the only
 * trust anchor) signs SNP reports that bind HCL variable data publishing a REAL swtpm AK; the vTPM
 * quote comes from swtpm via tpm2-tools. Each refusal is a case the corpus cannot produce (it would
 * need AMD's keys): TCB, chip id, VMPL, VLEK flag, expiry, an untrusted ASK, v2 user-data.
 */
const haveTools = existsSync('/usr/bin/swtpm') && existsSync('/usr/bin/tpm2_quote');
if (!haveTools) console.warn('skipping synthetic az-snp-vtpm tests: swtpm or tpm2-tools missing');

const NOW = new Date();
const REPORT_DATA = new Uint8Array(48).map((_, i) => (i * 7 + 3) & 0xff);

let vtpm: SwtpmVtpm;
let chain: SyntheticAmdChain;
let vcek: SyntheticVcek;
let anchors: SnpTrustAnchors;
let akSpkiDer: Uint8Array;
let quote: VtpmQuoteParts;

function evidence(o: { version?: 0 | 1 | 2; hclReport: Uint8Array; vcekOverride?: SyntheticVcek; q?: VtpmQuoteParts }): unknown {
  return azVtpmEvidence({ tee: 'az-snp-vtpm', version: o.version ?? 1, quote: o.q ?? quote, hclReport: o.hclReport, vcek: o.vcekOverride ?? vcek });
}

function codeOf(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    if (err instanceof CvmError || err instanceof VerifierError) return err.code;
    throw err;
  }
  return 'no error';
}

const appraise = (ev: unknown, o: { now?: Date; a?: SnpTrustAnchors; reportData?: Uint8Array; initDataDigest?: Uint8Array } = {}) =>
  appraiseAzSnpVtpmEvidence(ev, { expectedReportData: o.reportData ?? REPORT_DATA, trustAnchors: o.a ?? anchors, now: o.now ?? NOW, ...(o.initDataDigest !== undefined ? { initDataDigest: o.initDataDigest } : {}) });

describe.skipIf(!haveTools)('az-snp-vtpm with a synthetic AMD chain and a swtpm AK', () => {
  beforeAll(async () => {
    vtpm = await startSwtpmVtpm();
    akSpkiDer = vtpm.akSpkiDer;
    quote = await vtpm.quote(REPORT_DATA);
    chain = await createSyntheticAmdChain({ generation: 'Milan', now: NOW });
    vcek = await chain.issueVcek();
    anchors = createSnpTrustAnchors([chain.arkDer, chain.askDer]);
  });

  afterAll(async () => {
    await vtpm?.stop();
  });

  it('accepts v0, v1 and v2 evidence and reports the hardware claims', () => {
    const { hclReport } = synthesizeSnpHclReport({ vcek, akSpkiDer, userData: REPORT_DATA });
    for (const version of [0, 1, 2] as const) {
      const r = appraise(evidence({ version, hclReport }));
      expect(r.evidenceVersion).toBe(version);
      expect(r.chain.generation).toBe('Milan');
      expect(r.claims['report_data']).toBe(Buffer.from(REPORT_DATA).toString('hex'));
      expect(r.claims['reported_tcb_snp']).toBe('24');
      expect((r.claims['snp'] as Record<string, unknown>)['vmpl']).toBe(0);
    }
  });

  it('refuses a quote made for other report data, and v2 whose user-data is another session\'s', () => {
    const { hclReport } = synthesizeSnpHclReport({ vcek, akSpkiDer, userData: REPORT_DATA });
    expect(codeOf(() => appraise(evidence({ hclReport }), { reportData: new Uint8Array(48).fill(9) }))).toBe('QUOTE_EXTRA_DATA_MISMATCH');
    const other = synthesizeSnpHclReport({ vcek, akSpkiDer, userData: new Uint8Array(48).fill(1) });
    expect(codeOf(() => appraise(evidence({ version: 2, hclReport: other.hclReport })))).toBe('HCL_USER_DATA_MISMATCH');
    // v1 does not promise user-data (as in Trustee), so the same report passes as v1.
    expect(appraise(evidence({ version: 1, hclReport: other.hclReport })).evidenceVersion).toBe(1);
  });

  it('refuses an AK the hardware report does not vouch for', () => {
    // Variable data names the swtpm AK but the SNP report binds a different variable data.
    const honest = hclVariableData({ akSpkiDer, vmUniqueId: 'A' });
    const { snpReport } = synthesizeSnpHclReport({ vcek, akSpkiDer, variableData: hclVariableData({ akSpkiDer, vmUniqueId: 'B' }) });
    const hclReport = buildHclReport({ type: 'snp', hardwareReport: snpReport, variableData: honest });
    expect(codeOf(() => appraise(evidence({ hclReport })))).toBe('HCL_VAR_DATA_MISMATCH');
  });

  it('refuses TCB, chip-id and VLEK mismatches between report and VCEK, and VMPL 1', async () => {
    const cases: [Parameters<typeof synthesizeSnpHclReport>[0]['report'], string][] = [
      [{ reportedTcb: { ...vcek.tcb, snp: vcek.tcb.snp + 1 } }, 'SNP_VCEK_MISMATCH'],
      [{ reportedTcb: { ...vcek.tcb, microcode: 1 } }, 'SNP_VCEK_MISMATCH'],
      [{ chipId: new Uint8Array(64).fill(0x33) }, 'SNP_VCEK_MISMATCH'],
      [{ flags: 1 << 2 }, 'SNP_VCEK_MISMATCH'],
      [{ vmpl: 1 }, 'SNP_VMPL_INVALID'],
      [{ version: 1 }, 'SNP_REPORT_MALFORMED'],
      [{ signatureAlgo: 2 }, 'SNP_REPORT_MALFORMED'],
    ];
    for (const [report, code] of cases) {
      const { hclReport } = synthesizeSnpHclReport({ vcek, akSpkiDer, report });
      expect(codeOf(() => appraise(evidence({ hclReport }))), JSON.stringify(report)).toBe(code);
    }
    // A masked chip id (all zero) is not compared, and says so in the claims.
    const masked = synthesizeSnpHclReport({ vcek, akSpkiDer, report: { chipId: new Uint8Array(64) } });
    expect((appraise(evidence({ hclReport: masked.hclReport })).claims['snp'] as Record<string, unknown>)['chip_id_compared']).toBe(false);
  });

  it('refuses VCEKs outside the trust anchors, expired, of another generation or missing an extension', async () => {
    const { hclReport } = synthesizeSnpHclReport({ vcek, akSpkiDer });
    const otherChain = await createSyntheticAmdChain({ generation: 'Milan', now: NOW });
    expect(codeOf(() => appraise(evidence({ hclReport }), { a: createSnpTrustAnchors([otherChain.arkDer, otherChain.askDer]) }))).toBe('SNP_VCEK_UNTRUSTED');
    // The VCEK of another chain signs a valid report, but that chain is not trusted.
    const foreign = await otherChain.issueVcek();
    const f = synthesizeSnpHclReport({ vcek: foreign, akSpkiDer });
    expect(codeOf(() => appraise(evidence({ hclReport: f.hclReport, vcekOverride: foreign })))).toBe('SNP_VCEK_UNTRUSTED');
    expect(codeOf(() => appraise(evidence({ hclReport }), { now: new Date(NOW.getTime() + 20 * 365 * 24 * 3600e3) }))).toBe('SNP_CERT_EXPIRED');
    const genoa = await chain.issueVcek({ productName: 'Genoa-B1' });
    const g = synthesizeSnpHclReport({ vcek: genoa, akSpkiDer });
    expect(codeOf(() => appraise(evidence({ hclReport: g.hclReport, vcekOverride: genoa })))).toBe('SNP_VCEK_MISMATCH');
    const noHwId = await chain.issueVcek({ omitExtension: '1.3.6.1.4.1.3704.1.4' });
    expect(codeOf(() => appraise(evidence({ hclReport, vcekOverride: noHwId })))).toBe('SNP_VCEK_MALFORMED');
    const noSnpSpl = await chain.issueVcek({ omitExtension: '1.3.6.1.4.1.3704.1.3.3' });
    expect(codeOf(() => appraise(evidence({ hclReport, vcekOverride: noSnpSpl })))).toBe('SNP_VCEK_MALFORMED');
    // A VCEK signed by this chain but for another chip: the report's signature does not verify.
    const sibling = await chain.issueVcek();
    expect(codeOf(() => appraise(evidence({ hclReport, vcekOverride: sibling })))).toBe('SNP_SIGNATURE_INVALID');
  });

  it('checks the init-data binding in PCR8', () => {
    const { hclReport } = synthesizeSnpHclReport({ vcek, akSpkiDer });
    // swtpm's PCR8 is zero: no init-data digest extends to zero.
    expect(codeOf(() => appraise(evidence({ hclReport }), { initDataDigest: new Uint8Array(32).fill(1) }))).toBe('EVIDENCE_INIT_DATA_MISMATCH');
  });

  it('refuses HCL reports of the wrong type or hash, and malformed variable data', () => {
    const { snpReport, variableData } = synthesizeSnpHclReport({ vcek, akSpkiDer });
    const tdx = buildHclReport({ type: 'tdx', hardwareReport: snpReport, variableData });
    expect(codeOf(() => appraise(evidence({ hclReport: tdx })))).toBe('HCL_REPORT_TYPE_MISMATCH');
    const sha384 = buildHclReport({ type: 'snp', hardwareReport: snpReport, variableData, hashType: 2 });
    expect(codeOf(() => appraise(evidence({ hclReport: sha384 })))).toBe('HCL_HASH_UNSUPPORTED');
    const bad = (rawJson: string): string => codeOf(() => appraise(evidence({ hclReport: synthesizeSnpHclReport({ vcek, akSpkiDer, variableData: hclVariableData({ akSpkiDer, rawJson }) }).hclReport })));
    expect(bad('not json')).toBe('HCL_VAR_DATA_INVALID');
    expect(bad('{"keys":[]}')).toBe('HCL_VAR_DATA_INVALID');
    expect(bad('{"keys":[{"kid":"HCLAkPub","kty":"EC","crv":"P-256","x":"AA","y":"AA"}]}')).toBe('HCL_VAR_DATA_INVALID');
    const jwk = createPublicKey({ key: Buffer.from(akSpkiDer), format: 'der', type: 'spki' }).export({ format: 'jwk' });
    const twice = JSON.stringify({ keys: [{ kid: 'HCLAkPub', kty: 'RSA', n: jwk.n, e: jwk.e }, { kid: 'HCLAkPub', kty: 'RSA', n: jwk.n, e: jwk.e }] });
    expect(bad(twice)).toBe('HCL_VAR_DATA_INVALID');
    expect(bad(JSON.stringify({ keys: [{ kid: 'HCLAkPub', kty: 'RSA', n: jwk.n, e: jwk.e }], 'user-data': 'zz' }))).toBe('HCL_VAR_DATA_INVALID');
  });
});
