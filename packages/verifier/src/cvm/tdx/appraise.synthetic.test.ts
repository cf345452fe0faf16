import { existsSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  azVtpmEvidence,
  buildHclReport,
  buildTdQuote,
  buildTdReport,
  createSyntheticIntelPki,
  hclReportData,
  hclVariableData,
  signedTdxCollateral,
  startSwtpmVtpm,
  type CollateralOptions,
  type SwtpmVtpm,
  type SyntheticIntelPki,
  type SyntheticPck,
  type TdQuoteOptions,
  type VtpmQuoteParts,
} from '@keyhold/test-harness';
import { CvmError } from '../errors.js';
import { VerifierError } from '../../errors.js';
import { appraiseAzTdxVtpmEvidence } from './appraise.js';
import { parseTdxCollateral } from './collateral.js';
import { builtinTdxTrustAnchors, createTdxTrustAnchors, type TdxTrustAnchors } from './trust-anchors.js';

/**
 * A SYNTHETIC Intel PKI (test root, PCK platform CA, PCK certificates with the SGX extension, a TCB
 * signing certificate; @keyhold/test-harness) signs TD quotes whose REPORTDATA binds HCL variable
 * data publishing a REAL swtpm AK. Covers what the corpus cannot: the TCB status from signed
 * collateral, and refusals that need Intel's keys (QE identity, missing SGX extension).
 */
const haveTools = existsSync('/usr/bin/swtpm') && existsSync('/usr/bin/tpm2_quote');
if (!haveTools) console.warn('skipping synthetic az-tdx-vtpm tests: swtpm or tpm2-tools missing');

const NOW = new Date();
const DAY = 24 * 3600 * 1000;
const REPORT_DATA = new Uint8Array(48).map((_, i) => (i * 5 + 1) & 0xff);
const SGX = [6, 6, 2, 2, 3, 1, 0, 3, 0, 0, 0, 0, 0, 0, 0, 0];
const TDX = [2, 0, 6, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];

let vtpm: SwtpmVtpm;
let pki: SyntheticIntelPki;
let pck: SyntheticPck;
let anchors: TdxTrustAnchors;
let quote: VtpmQuoteParts;

function evidence(q: Partial<TdQuoteOptions> = {}, o: { pckOverride?: SyntheticPck } = {}): unknown {
  const variableData = hclVariableData({ akSpkiDer: vtpm.akSpkiDer });
  const reportData = hclReportData(variableData);
  const hclReport = buildHclReport({ type: 'tdx', hardwareReport: buildTdReport(reportData), variableData });
  const tdQuote = buildTdQuote({ reportData, pck: o.pckOverride ?? pck, teeTcbSvn: Uint8Array.from(TDX), ...q });
  return azVtpmEvidence({ tee: 'az-tdx-vtpm', version: 1, quote, hclReport, tdQuote });
}

function collateral(o: Partial<CollateralOptions> = {}): ReturnType<typeof parseTdxCollateral> {
  return parseTdxCollateral(
    signedTdxCollateral(pki, {
      issueDate: new Date(NOW.getTime() - DAY),
      nextUpdate: new Date(NOW.getTime() + 30 * DAY),
      levels: [
        { sgx: SGX, pcesvn: 11, tdx: TDX.map((v, i) => (i === 2 ? v + 1 : v)), status: 'UpToDate' },
        { sgx: SGX, pcesvn: 11, tdx: TDX, status: 'OutOfDate' },
        { sgx: SGX.map(() => 0), pcesvn: 0, tdx: TDX.map(() => 0), status: 'Revoked' },
      ],
      ...o,
    }),
  );
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

const appraise = (ev: unknown, o: { c?: ReturnType<typeof parseTdxCollateral>; now?: Date } = {}) =>
  appraiseAzTdxVtpmEvidence(ev, { expectedReportData: REPORT_DATA, trustAnchors: anchors, now: o.now ?? NOW, ...(o.c !== undefined ? { collateral: o.c } : {}) });

describe.skipIf(!haveTools)('az-tdx-vtpm with a synthetic Intel PKI and a swtpm AK', () => {
  beforeAll(async () => {
    vtpm = await startSwtpmVtpm();
    quote = await vtpm.quote(REPORT_DATA);
    pki = await createSyntheticIntelPki({ now: NOW });
    pck = await pki.issuePck({ sgxTcbComponents: SGX, pceSvn: 11 });
    anchors = createTdxTrustAnchors([pki.rootDer]);
  });

  afterAll(async () => {
    await vtpm?.stop();
  });

  it('verifies, with TCB status unknown without collateral and Intel\'s verdict with it', () => {
    const ev = evidence();
    expect(appraise(ev).claims['tcb_status']).toBe('unknown');
    // The TD's TDX component 2 (6) is below the UpToDate level's 7: the next level, OutOfDate, applies.
    const r = appraise(ev, { c: collateral() });
    expect(r.tcb.status).toBe('OutOfDate');
    expect(r.tcb.advisoryIds).toEqual(['INTEL-SA-00000']);
    const upToDate = appraise(evidence({ teeTcbSvn: Uint8Array.from(TDX.map((v, i) => (i === 2 ? v + 1 : v))) }), { c: collateral() });
    expect(upToDate.claims['tcb_status']).toBe('UpToDate');
    // With the TDX module version (TEE_TCB_SVN[1]) set, indices 0 and 1 are not compared.
    const moduleVersion = appraise(evidence({ teeTcbSvn: Uint8Array.from([0, 1, 7]) }), { c: collateral() });
    expect(moduleVersion.tcb.status).toBe('UpToDate');
    // A platform below every level but the last.
    const old = appraise(ev, { c: collateral({ levels: [{ sgx: SGX.map((v) => v + 1), pcesvn: 11, tdx: TDX, status: 'UpToDate' }, { sgx: SGX.map(() => 0), pcesvn: 0, tdx: TDX.map(() => 0), status: 'Revoked' }] }) });
    expect(old.tcb.status).toBe('Revoked');
    const none = appraise(ev, { c: collateral({ levels: [{ sgx: SGX, pcesvn: 12, tdx: TDX, status: 'UpToDate' }] }) });
    expect(none.tcb.status).toBe('NotSupported');
  });

  it('takes the worse of platform and QE status, and is unknown for another platform\'s collateral', () => {
    const ev = evidence({ teeTcbSvn: Uint8Array.from(TDX.map((v, i) => (i === 2 ? v + 1 : v))) });
    const qeOld = appraise(ev, { c: collateral({ qeLevels: [{ isvsvn: 6, status: 'UpToDate' }, { isvsvn: 0, status: 'OutOfDate' }] }) });
    expect(qeOld.tcb.platformStatus).toBe('UpToDate');
    expect(qeOld.tcb.qeStatus).toBe('OutOfDate');
    expect(qeOld.tcb.status).toBe('OutOfDate');
    const other = appraise(ev, { c: collateral({ fmspc: '00906ED50000' }) });
    expect(other.tcb.status).toBe('unknown');
  });

  it('refuses tampered, stale, foreign-signed or other-PCE collateral', async () => {
    const ev = evidence();
    expect(codeOf(() => appraise(ev, { c: collateral({ tamper: true }) }))).toBe('TDX_COLLATERAL_INVALID');
    expect(codeOf(() => appraise(ev, { c: collateral({ nextUpdate: new Date(NOW.getTime() - DAY), issueDate: new Date(NOW.getTime() - 40 * DAY) }) }))).toBe('TDX_COLLATERAL_INVALID');
    expect(codeOf(() => appraise(ev, { c: collateral({ pceId: '0100' }) }))).toBe('TDX_COLLATERAL_INVALID');
    const otherPki = await createSyntheticIntelPki({ now: NOW });
    const foreign = parseTdxCollateral(signedTdxCollateral(otherPki, { issueDate: new Date(NOW.getTime() - DAY), nextUpdate: new Date(NOW.getTime() + DAY), levels: [{ sgx: SGX, pcesvn: 0, tdx: TDX, status: 'UpToDate' }] }));
    expect(codeOf(() => appraise(ev, { c: foreign }))).toBe('TDX_COLLATERAL_INVALID');
    // Collateral "signed" by a PCK key (its chain is one certificate longer) is refused.
    const byPck = collateral();
    const pckSigned = [{ ...byPck[0]!, tcb_info_issuer_chain: pck.chainPem }];
    expect(codeOf(() => appraise(ev, { c: pckSigned }))).toBe('TDX_COLLATERAL_INVALID');
    expect(codeOf(() => parseTdxCollateral({ tcb_info: 'x' }))).toBe('TDX_COLLATERAL_INVALID');
  });

  it('refuses a QE that is not Intel\'s TD QE, an unbound attestation key, and a PCK without the SGX extension', async () => {
    expect(codeOf(() => appraise(evidence({ qeMrSigner: '00'.repeat(32) })))).toBe('TDX_QE_BINDING_INVALID');
    expect(codeOf(() => appraise(evidence({ qeIsvProdId: 1 })))).toBe('TDX_QE_BINDING_INVALID');
    expect(codeOf(() => appraise(evidence({ bindAttestationKey: false })))).toBe('TDX_QE_BINDING_INVALID');
    const notPck = await pki.issuePck({ omitSgxExtension: true });
    expect(codeOf(() => appraise(evidence({}, { pckOverride: notPck })))).toBe('TDX_PCK_UNTRUSTED');
    const expiredPck = await pki.issuePck({ notAfter: new Date(NOW.getTime() - DAY) });
    expect(codeOf(() => appraise(evidence({}, { pckOverride: expiredPck })))).toBe('TDX_CERT_EXPIRED');
    // Intel's real root does not anchor the synthetic PKI.
    expect(codeOf(() => appraiseAzTdxVtpmEvidence(evidence(), { expectedReportData: REPORT_DATA, trustAnchors: builtinTdxTrustAnchors(), now: NOW }))).toBe('TDX_PCK_UNTRUSTED');
  });

  it('reports TD attributes (debug) from the signed quote', () => {
    const r = appraise(evidence({ tdAttributes: Uint8Array.of(1, 0, 0, 0, 0, 0, 0, 0) }));
    expect(r.debugAllowed).toBe(true);
    expect((r.claims['td_attributes'] as Record<string, boolean>)['debug']).toBe(true);
  });
});
