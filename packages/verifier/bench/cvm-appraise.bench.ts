/**
 * Azure CVM vTPM appraisal benchmark. Run from the repo root:
 *   node --import tsx packages/verifier/bench/cvm-appraise.bench.ts
 * Prints figures; asserts nothing. Baseline measured in the same run: `appraiseTpmEvidence` of the
 * same vTPM quote alone (what a `tpm` attestation costs), so the ratio is the price of the hardware
 * chain (AMD: VCEK chain + ECDSA P-384; Intel: PCK chain + two ECDSA P-256 + QE checks).
 */
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { appraiseTpmEvidence } from '../src/index.js';
import { appraiseAzSnpVtpmEvidence, appraiseAzTdxVtpmEvidence, builtinSnpTrustAnchors, builtinTdxTrustAnchors, decodeUnverifiedCvmEvidence, decodeUnverifiedHclReport, decodeUnverifiedHclVariableData } from '../src/cvm/index.js';

const repoRoot = fileURLToPath(new URL('../../../', import.meta.url));
const dir = path.resolve(repoRoot, '../shared/corpus/cvm-vtpm');
if (!existsSync(dir)) {
  console.log(`corpus absent (${dir}); nothing to measure`);
  process.exit(0);
}
const load = (p: string): unknown => JSON.parse(readFileSync(path.join(dir, p), 'utf8'));
const snp = load('az-snp-vtpm/evidence-v1.json');
const tdx = load('az-tdx-vtpm/evidence-v1.json');
const challenge = new Uint8Array(Buffer.from('challenge'));
const now = new Date('2025-06-01T00:00:00Z');
const snpAnchors = builtinSnpTrustAnchors();
const tdxAnchors = builtinTdxTrustAnchors();

// The same vTPM quote as `tpm` evidence (AK from the HCL report, signature as a TPMT_SIGNATURE).
const ev = decodeUnverifiedCvmEvidence('az-snp-vtpm', snp);
const ak = decodeUnverifiedHclVariableData(decodeUnverifiedHclReport(ev.hclReport).variableData).akSpkiDer;
const sig = Buffer.concat([Buffer.from([0, 0x14, 0, 0x0b, ev.tpmQuote.signature.length >> 8, ev.tpmQuote.signature.length & 0xff]), ev.tpmQuote.signature]);
const tpmEvidence = {
  ak_public: Buffer.from(ak).toString('base64'),
  tpm_quote: { message: Buffer.from(ev.tpmQuote.message).toString('base64'), signature: sig.toString('base64'), pcrs: ev.tpmQuote.pcrs.map((p) => Buffer.from(p).toString('hex')) },
};

function rate(label: string, n: number, fn: () => void): number {
  for (let i = 0; i < 50; i++) fn();
  const t0 = performance.now();
  for (let i = 0; i < n; i++) fn();
  const perSec = n / ((performance.now() - t0) / 1000);
  console.log(`${label.padEnd(52)} ${perSec.toFixed(0).padStart(8)} /s  (${(1000 / perSec).toFixed(3)} ms)`);
  return perSec;
}

const N = Number(process.env['BENCH_N'] ?? 1000);
const base = rate('baseline: appraiseTpmEvidence (same vTPM quote)', N, () => {
  appraiseTpmEvidence(tpmEvidence, { expectedReportData: challenge, akTrust: { mode: 'not-checked' } });
});
const s = rate('appraiseAzSnpVtpmEvidence (v1, Milan chain)', N, () => {
  appraiseAzSnpVtpmEvidence(snp, { expectedReportData: challenge, trustAnchors: snpAnchors, now });
});
const t = rate('appraiseAzTdxVtpmEvidence (v1, Intel chain)', N, () => {
  appraiseAzTdxVtpmEvidence(tdx, { expectedReportData: challenge, trustAnchors: tdxAnchors, now });
});
console.log(`throughput vs baseline: az-snp-vtpm ${(s / base).toFixed(2)}, az-tdx-vtpm ${(t / base).toFixed(2)}`);
