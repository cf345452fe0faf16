import { describe, expect, it } from 'vitest';
import { createSyntheticAmdChain, createSyntheticIntelPki } from '@keyhold/test-harness';
import { CvmError } from '../errors.js';
import { pemCertificates } from './trust-anchors.js';
import { decodeUnverifiedVcek } from './vcek.js';
import { decodeUnverifiedSnpReport } from './report.js';

const code = (fn: () => unknown): string => {
  try {
    fn();
  } catch (err) {
    if (err instanceof CvmError) return err.code;
    throw err;
  }
  return 'no error';
};

describe('decodeUnverifiedVcek / decodeUnverifiedSnpReport', () => {
  it('reads the product name, TCB and hardware id of a (synthetic) VCEK, Turin layout included', async () => {
    const chain = await createSyntheticAmdChain({ generation: 'Turin' });
    const vcek = await chain.issueVcek({ tcb: { bootloader: 1, tee: 2, snp: 3, microcode: 4, fmc: 5 } });
    const v = decodeUnverifiedVcek(vcek.der);
    expect(v.productName).toBe('Turin-B0');
    expect(v.tcb).toEqual({ bootloader: 1, tee: 2, snp: 3, microcode: 4, fmc: 5 });
    expect(v.hwId).toHaveLength(8);
  });

  it('refuses trailing data, a non-P-384 key, a missing product name, oversized input', async () => {
    const chain = await createSyntheticAmdChain();
    const vcek = await chain.issueVcek();
    expect(code(() => decodeUnverifiedVcek(Uint8Array.from([...vcek.der, 0])))).toBe('SNP_VCEK_MALFORMED');
    const pki = await createSyntheticIntelPki();
    const [pckLeaf] = pemCertificates((await pki.issuePck()).chainPem);
    expect(code(() => decodeUnverifiedVcek(pckLeaf!))).toBe('SNP_VCEK_MALFORMED');
    const noName = await chain.issueVcek({ omitExtension: '1.3.6.1.4.1.3704.1.2' });
    expect(code(() => decodeUnverifiedVcek(noName.der))).toBe('SNP_VCEK_MALFORMED');
    expect(code(() => decodeUnverifiedVcek(new Uint8Array(5000)))).toBe('SNP_VCEK_MALFORMED');
  });

  it('refuses an SNP report that is not 1184 bytes', () => {
    expect(code(() => decodeUnverifiedSnpReport(new Uint8Array(1183)))).toBe('SNP_REPORT_MALFORMED');
    expect(code(() => decodeUnverifiedSnpReport(new Uint8Array(1185)))).toBe('SNP_REPORT_MALFORMED');
  });
});
