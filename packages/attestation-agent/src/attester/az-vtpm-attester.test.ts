import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createSyntheticAmdChain, startSwtpm, startSwtpmVtpm, synthesizeSnpHclReport, type SwtpmVtpm, type SyntheticVcek } from '@keyhold/test-harness';
import { agentConfigFrom } from '../config.js';
import { AgentError } from '../errors.js';
import { loadOrCreateAk } from '../tpm/ak-store.js';
import type { TpmDevice } from '../tpm/device.js';
import { openTpmDevice } from '../tpm/tss-device.js';
import { AZURE_VTPM_AK_HANDLE, AzVtpmAttester, detectCvmTee, hclReportTee } from './az-vtpm-attester.js';
import { azVtpmSessionParts } from './az-vtpm-session.js';
import { FileVcekSource } from './cvm-platform.js';

/**
 * The Azure vTPM attester on a real swtpm through tpm2-tss: a SYNTHETIC HCL report (AK = the
 * swtpm's RSA AK at 0x81000003, SNP report signed by a synthetic VCEK) is written into NV
 * 0x01400001 with tpm2_nvdefine/tpm2_nvwrite, as Azure's paravisor would; the agent reads it back
 * over FFI. Azure's own 2600-byte reports (the corpus hcl-report.bin) do not fit: swtpm 0.7 /
 * libtpms 0.9 limit NV indices to 2048 bytes. IMDS (VCEK, TD quote) cannot be reached here; the
 * VCEK comes from a file.
 */
const haveTools = existsSync('/usr/bin/swtpm') && existsSync('/usr/bin/tpm2_nvwrite');
if (!haveTools) console.warn('skipping az-vtpm attester tests: swtpm or tpm2-tools missing');

describe.skipIf(!haveTools)('AzVtpmAttester on swtpm', () => {
  let vtpm: SwtpmVtpm;
  let tpm: TpmDevice;
  let hclReport: Uint8Array;
  let vcek: SyntheticVcek;
  let dir: string;

  beforeAll(async () => {
    vtpm = await startSwtpmVtpm();
    const chain = await createSyntheticAmdChain();
    vcek = await chain.issueVcek();
    ({ hclReport } = synthesizeSnpHclReport({ vcek, akSpkiDer: vtpm.akSpkiDer }));
    expect(hclReport.length).toBeLessThanOrEqual(2048);
    await vtpm.writeHclReport(hclReport);
    tpm = await openTpmDevice({ tcti: vtpm.tcti });
    dir = mkdtempSync(path.join(tmpdir(), 'keyhold-az-attester-'));
    writeFileSync(path.join(dir, 'vcek.pem'), vcek.pem);
  });

  afterAll(async () => {
    await tpm?.close();
    await vtpm?.stop();
    if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
  });

  it('reads the HCL report from NV 0x01400001 byte for byte and detects SEV-SNP', async () => {
    expect(await tpm.readNv(0x01400001)).toEqual(hclReport);
    expect(await detectCvmTee(tpm)).toBe('az-snp-vtpm');
  });

  it('produces v1 evidence: quote over PCRs 0-23 with the whole 48-byte digest, the HCL report, the VCEK', async () => {
    const ak = await loadOrCreateAk(tpm, { alg: 'rsa', persistentHandle: AZURE_VTPM_AK_HANDLE, persist: false });
    try {
      const attester = new AzVtpmAttester({ tee: 'az-snp-vtpm', tpm, ak: ak.ak, vcek: new FileVcekSource(path.join(dir, 'vcek.pem')) });
      const reportData = new Uint8Array(48).map((_, i) => i + 1);
      const { primary } = await attester.evidence({ nonce: 'n', teePubkey: {} as never, reportData, hashAlgorithm: 'sha384', challengeExtra: {} });
      const ev = primary as Record<string, any>;
      expect(ev['version']).toBe(1);
      expect(Buffer.from(ev['hcl_report'], 'base64url')).toEqual(Buffer.from(hclReport));
      expect(ev['hcl_report']).toMatch(/^[A-Za-z0-9_-]+=*$/);
      expect(Buffer.from(ev['vcek'], 'base64url')).toEqual(Buffer.from(vcek.der));
      expect(ev['tpm_quote'].pcrs).toHaveLength(24);
      expect(Buffer.from(ev['tpm_quote'].signature, 'hex')).toHaveLength(256);
      // TPMS_ATTEST: magic, type, qualifiedSigner (TPM2B), then extraData (TPM2B) = the report data.
      const msg = Buffer.from(ev['tpm_quote'].message, 'hex');
      const signerLen = msg.readUInt16BE(6);
      expect(msg.readUInt16BE(8 + signerLen)).toBe(48);
      expect(msg.subarray(10 + signerLen, 10 + signerLen + 48)).toEqual(Buffer.from(reportData));
      // An HCL report of the other vendor is not sent as this tee's evidence.
      const tdx = new AzVtpmAttester({ tee: 'az-tdx-vtpm', tpm, ak: ak.ak, tdQuote: { tdQuote: async () => new Uint8Array(0) } });
      await expect(tdx.evidence({ nonce: 'n', teePubkey: {} as never, reportData, hashAlgorithm: 'sha384', challengeExtra: {} })).rejects.toMatchObject({ code: 'TPM_BAD_RESPONSE' });
    } finally {
      await ak.release();
    }
  });

  it('--tee auto picks az-snp-vtpm and the AK at 0x81000003 without creating one', async () => {
    const parts = await azVtpmSessionParts(tpm, agentConfigFrom({ tee: 'auto', 'vcek-file': path.join(dir, 'vcek.pem') }, {}));
    try {
      expect(parts?.tee).toBe('az-snp-vtpm');
      expect(parts?.ak.created).toBe(false);
    } finally {
      await parts?.ak.release();
    }
    expect(await azVtpmSessionParts(tpm, agentConfigFrom({}, {}))).toBeUndefined();
  });

  it('on a TPM without an HCL report: auto means tpm, and az-* finds no AK to use', async () => {
    const plain = await startSwtpm();
    const dev = await openTpmDevice({ tcti: plain.tcti });
    try {
      expect(await detectCvmTee(dev)).toBeUndefined();
      await expect(azVtpmSessionParts(dev, agentConfigFrom({ tee: 'az-snp-vtpm' }, {}))).rejects.toMatchObject({ code: 'TPM_NO_AK' });
    } finally {
      await dev.close();
      await plain.stop();
    }
  });
});

describe('HCL report kind and configuration', () => {
  it('reads the report type only from an HCLA header', () => {
    const r = new Uint8Array(1300);
    r.set(Buffer.from('HCLA'), 0);
    new DataView(r.buffer).setUint32(32 + 1184 + 8, 4, true);
    expect(hclReportTee(r)).toBe('az-tdx-vtpm');
    new DataView(r.buffer).setUint32(32 + 1184 + 8, 3, true);
    expect(hclReportTee(r)).toBeUndefined();
    expect(hclReportTee(new Uint8Array(10))).toBeUndefined();
  });

  it('refuses unknown --tee values', () => {
    expect(() => agentConfigFrom({ tee: 'snp' }, {})).toThrow(AgentError);
    expect(agentConfigFrom({ tee: 'az-tdx-vtpm' }, {}).tee).toBe('az-tdx-vtpm');
  });
});
