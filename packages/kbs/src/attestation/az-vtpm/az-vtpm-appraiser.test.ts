import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  azVtpmEvidence,
  buildHclReport,
  buildTdQuote,
  buildTdReport,
  createSyntheticAmdChain,
  createSyntheticIntelPki,
  hclReportData,
  hclVariableData,
  signedTdxCollateral,
  startSwtpmVtpm,
  synthesizeSnpHclReport,
  type SwtpmVtpm,
} from '@keyhold/test-harness';
import { builtinSnpTrustAnchors, builtinTdxTrustAnchors, createSnpTrustAnchors, createTdxTrustAnchors, parseTdxCollateral } from '@keyhold/verifier/cvm';
import { KbsError } from '../../errors.js';
import type { ReferenceSnapshot, SessionRecord } from '../../state/ports.js';
import { referenceSnapshot } from '../../state/reference-values.js';
import { defaultAttestationPolicy } from '../attestation-policy.js';
import { MeasuredBootExtension } from '../tpm/measured-boot-extension.js';
import { AzVtpmAppraiser } from './az-vtpm-appraiser.js';
import { cvmConfigFrom } from './cvm-config.js';
import { openAzVtpmAppraisers } from './open-az-vtpm.js';

// Corpus: Trustee's az-snp-vtpm / az-tdx-vtpm test evidence (see ../shared/corpus/README.md),
// made with report data "challenge".
const repoRoot = fileURLToPath(new URL('../../../../../', import.meta.url));
const corpus = path.resolve(repoRoot, '../shared/corpus/cvm-vtpm');
const haveCorpus = existsSync(corpus);
if (!haveCorpus) console.warn(`skipping az-vtpm appraiser corpus tests: ${corpus} is absent`);
const haveTools = existsSync('/usr/bin/swtpm') && existsSync('/usr/bin/tpm2_quote');
if (!haveTools) console.warn('skipping synthetic az-vtpm appraiser tests: swtpm or tpm2-tools missing');

const CHALLENGE = new Uint8Array(Buffer.from('challenge'));
const CORPUS_NOW = new Date('2025-06-01T00:00:00Z');
const load = (p: string): any => JSON.parse(readFileSync(path.join(corpus, p), 'utf8'));

async function run(appraiser: AzVtpmAppraiser, evidence: unknown, o: { reportData?: Uint8Array; now?: Date; refs?: ReferenceSnapshot } = {}) {
  const references = o.refs ?? referenceSnapshot(0, new Map());
  const appraisal = await appraiser.appraise({ evidence, expectedReportData: o.reportData ?? CHALLENGE, session: {} as SessionRecord, references, now: o.now ?? CORPUS_NOW });
  const verdict = await defaultAttestationPolicy.evaluate({ tee: appraiser.tee, appraisal, references });
  return { appraisal, verdict };
}

async function refusal(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (err) {
    if (err instanceof KbsError) return `${err.code} ${err.message}`;
    throw err;
  }
  return 'no error';
}

describe.skipIf(!haveCorpus)('AzVtpmAppraiser on Trustee test evidence', () => {
  const snp = new AzVtpmAppraiser({ tee: 'az-snp-vtpm', snpTrustAnchors: builtinSnpTrustAnchors() });
  const tdx = new AzVtpmAppraiser({ tee: 'az-tdx-vtpm', tdxTrustAnchors: builtinTdxTrustAnchors() });

  it('az-snp-vtpm: affirming with hardware from the AMD chain, Trustee claims in the submodule', async () => {
    const { appraisal, verdict } = await run(snp, load('az-snp-vtpm/evidence-v1.json'));
    expect(appraisal.vector).toEqual({ 'instance-identity': 2, hardware: 2, 'runtime-opaque': 2 });
    expect(appraisal.reportDataHex).toBe('6368616c6c656e6765');
    expect((appraisal.teeClaims['tpm'] as Record<string, string>)['pcr00']).toBe('e15c44796beabf46abcec7c57e590942041e47497e4ec27571c8b7664f48dced');
    expect(appraisal.teeClaims['measurement']).toBeTypeOf('string');
    expect(verdict.status).toBe('affirming');
  });

  it('az-tdx-vtpm without collateral: TCB unknown, so no hardware claim', async () => {
    const { appraisal } = await run(tdx, load('az-tdx-vtpm/evidence-v1.json'));
    expect(appraisal.teeClaims['tcb_status']).toBe('unknown');
    expect(appraisal.vector['hardware']).toBe(0);
  });

  it('the built-in policy pins PCRs with <tee>_pcrNN reference values', async () => {
    const refs = referenceSnapshot(1, new Map([['az-snp-vtpm_pcr00', ['00'.repeat(32)]]]));
    const { verdict } = await run(snp, load('az-snp-vtpm/evidence-v1.json'), { refs });
    expect(verdict.status).toBe('contraindicated');
    expect(verdict.reason).toMatch(/pcr00/);
  });

  it('refuses with 401 AttestationFailed naming the verifier code', async () => {
    expect(await refusal(run(snp, load('az-snp-vtpm/evidence-v1.json'), { reportData: new Uint8Array(48) }))).toMatch(/^ATTESTATION_FAILED QUOTE_EXTRA_DATA_MISMATCH: /);
    const ev = load('az-snp-vtpm/evidence-v1.json');
    const hcl = Buffer.from(ev.hcl_report, 'base64url');
    hcl[32 + 0x90] = (hcl[32 + 0x90] as number) ^ 1;
    const tampered = { ...ev, hcl_report: hcl.toString('base64').replaceAll('+', '-').replaceAll('/', '_') };
    expect(await refusal(run(snp, tampered))).toMatch(/^ATTESTATION_FAILED SNP_SIGNATURE_INVALID: /);
    expect(await refusal(run(tdx, load('az-snp-vtpm/evidence-v1.json')))).toMatch(/^ATTESTATION_FAILED CVM_EVIDENCE_MALFORMED: /);
    const genoaOnly = new AzVtpmAppraiser({ tee: 'az-snp-vtpm', snpTrustAnchors: createSnpTrustAnchors(builtinSnpTrustAnchors().chains.filter((c) => c.generation === 'Genoa').flatMap((c) => [new Uint8Array(c.ask.raw), new Uint8Array(c.ark.raw)])) });
    expect(await refusal(run(genoaOnly, load('az-snp-vtpm/evidence-v1.json')))).toMatch(/^ATTESTATION_FAILED SNP_VCEK_UNTRUSTED: /);
  });

  it('runs the TPM steps on the verified vTPM quote (event log required but absent → refused)', async () => {
    const strict = new AzVtpmAppraiser({ tee: 'az-snp-vtpm', snpTrustAnchors: builtinSnpTrustAnchors(), extensions: [new MeasuredBootExtension({ requireEventLog: true, allowSha1: false })] });
    expect(await refusal(run(strict, load('az-snp-vtpm/evidence-v1.json')))).toMatch(/^ATTESTATION_FAILED .*event_log/);
  });
});

describe.skipIf(!haveTools)('AzVtpmAppraiser with synthetic chains and a swtpm AK', () => {
  let vtpm: SwtpmVtpm;
  const reportData = new Uint8Array(48).fill(0x3c);
  const now = new Date();
  beforeAll(async () => {
    vtpm = await startSwtpmVtpm();
  });
  afterAll(async () => {
    await vtpm?.stop();
  });

  it('a debuggable SNP guest is contraindicated (runtime-opaque 96)', async () => {
    const chain = await createSyntheticAmdChain({ now });
    const vcek = await chain.issueVcek();
    const { hclReport } = synthesizeSnpHclReport({ vcek, akSpkiDer: vtpm.akSpkiDer, report: { policy: 0x3001fn | (1n << 19n) } });
    const ev = azVtpmEvidence({ tee: 'az-snp-vtpm', version: 1, quote: await vtpm.quote(reportData), hclReport, vcek });
    const appraiser = new AzVtpmAppraiser({ tee: 'az-snp-vtpm', snpTrustAnchors: createSnpTrustAnchors([chain.arkDer, chain.askDer]) });
    const { appraisal, verdict } = await run(appraiser, ev, { reportData, now });
    expect(appraisal.teeClaims['policy_debug_allowed']).toBe('true');
    expect(appraisal.vector['runtime-opaque']).toBe(96);
    expect(verdict.status).toBe('contraindicated');
  });

  it('TDX hardware follows Intel\'s TCB status: UpToDate 2, OutOfDate 32 (warning)', async () => {
    const pki = await createSyntheticIntelPki({ now });
    const pck = await pki.issuePck();
    const variableData = hclVariableData({ akSpkiDer: vtpm.akSpkiDer });
    const rd = hclReportData(variableData);
    const ev = azVtpmEvidence({
      tee: 'az-tdx-vtpm',
      version: 1,
      quote: await vtpm.quote(reportData),
      hclReport: buildHclReport({ type: 'tdx', hardwareReport: buildTdReport(rd), variableData }),
      tdQuote: buildTdQuote({ reportData: rd, pck, teeTcbSvn: Uint8Array.of(2, 0, 6) }),
    });
    const sgx = [6, 6, 2, 2, 3, 1, 0, 3, 0, 0, 0, 0, 0, 0, 0, 0];
    const tdxSvn = (c: number): number[] => [2, 0, c, ...new Array(13).fill(0)];
    const collateral = (c: number) =>
      parseTdxCollateral(signedTdxCollateral(pki, { issueDate: new Date(now.getTime() - 1000), nextUpdate: new Date(now.getTime() + 86400e3), levels: [{ sgx, pcesvn: 11, tdx: tdxSvn(c), status: 'UpToDate' }, { sgx, pcesvn: 11, tdx: tdxSvn(0), status: 'OutOfDate' }] }));
    const anchors = createTdxTrustAnchors([pki.rootDer]);
    const upToDate = await run(new AzVtpmAppraiser({ tee: 'az-tdx-vtpm', tdxTrustAnchors: anchors, tdxCollateral: collateral(6) }), ev, { reportData, now });
    expect(upToDate.appraisal.vector['hardware']).toBe(2);
    expect(upToDate.verdict.status).toBe('affirming');
    const outOfDate = await run(new AzVtpmAppraiser({ tee: 'az-tdx-vtpm', tdxTrustAnchors: anchors, tdxCollateral: collateral(7) }), ev, { reportData, now });
    expect(outOfDate.appraisal.teeClaims['tcb_status']).toBe('OutOfDate');
    expect(outOfDate.appraisal.vector['hardware']).toBe(32);
    expect(outOfDate.verdict.status).toBe('warning');
  });
});

describe('[cvm] configuration', () => {
  it('defaults to both appraisers with the shipped roots; enabled = false registers none', async () => {
    const both = await openAzVtpmAppraisers(cvmConfigFrom(undefined), []);
    expect(both.map((a) => a.tee)).toEqual(['az-snp-vtpm', 'az-tdx-vtpm']);
    expect(await openAzVtpmAppraisers(cvmConfigFrom({ enabled: false }), [])).toEqual([]);
    const noAmd = await openAzVtpmAppraisers(cvmConfigFrom({ amd_builtin_roots: false }), []);
    expect(noAmd.map((a) => a.tee)).toEqual(['az-tdx-vtpm']);
  });

  it('loads extra anchors and collateral, and refuses unusable files at start', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'keyhold-cvm-config-'));
    try {
      const chain = await createSyntheticAmdChain();
      writeFileSync(path.join(dir, 'chain.pem'), `${chain.askPem}\n${chain.arkPem}\n`);
      const ok = await openAzVtpmAppraisers(cvmConfigFrom({ amd_builtin_roots: false, amd_ark_dir: dir, intel_builtin_root: false }), []);
      expect(ok.map((a) => a.tee)).toEqual(['az-snp-vtpm']);
      const askOnlyDir = mkdtempSync(path.join(tmpdir(), 'keyhold-cvm-config-'));
      writeFileSync(path.join(askOnlyDir, 'ask.pem'), chain.askPem);
      await expect(openAzVtpmAppraisers(cvmConfigFrom({ amd_builtin_roots: false, amd_ark_dir: askOnlyDir }), [])).rejects.toThrow(/\[cvm\] trust anchors/);
      rmSync(askOnlyDir, { recursive: true, force: true });
      writeFileSync(path.join(dir, 'collateral.json'), '{"tcb_info": 1}');
      await expect(openAzVtpmAppraisers(cvmConfigFrom({ tdx_collateral_file: path.join(dir, 'collateral.json') }), [])).rejects.toThrow(/tdx_collateral_file/);
      await expect(openAzVtpmAppraisers(cvmConfigFrom({ amd_ark_dir: path.join(dir, 'absent') }), [])).rejects.toThrow(/amd_ark_dir/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
