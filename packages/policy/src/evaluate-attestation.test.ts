import { describe, expect, it } from 'vitest';
import { compileAttestationPolicy } from './compile.js';
import { evaluateAttestationPolicy } from './evaluate-attestation.js';
import { DEFAULT_ATTESTATION_POLICY } from './defaults.js';
import type { PolicyError } from './errors.js';

const pcr = (b: string) => b.repeat(64);
const claims = { tpm: { pcr00: pcr('0'), pcr07: pcr('7'), pcr08: pcr('a'), ak_public: 'MFkw-ak' } };

describe('evaluateAttestationPolicy (default policy)', () => {
  const policy = compileAttestationPolicy(DEFAULT_ATTESTATION_POLICY, { version: 3 });

  it('is affirming for verified TPM evidence without PCR references', () => {
    const a = evaluateAttestationPolicy(policy, { claims, tee: 'tpm' });
    expect(a).toMatchObject({ status: 'affirming', policyId: 'default', version: 3 });
    expect(a.vector).toEqual({
      'instance-identity': 2,
      configuration: 0,
      executables: 0,
      'file-system': 0,
      hardware: 2,
      'runtime-opaque': 0,
      'storage-opaque': 0,
      'sourced-data': 0,
    });
  });

  it('sets configuration 2 when every pcrNN reference matches (hex case-insensitive)', () => {
    const a = evaluateAttestationPolicy(policy, { claims, reference: { pcr07: [pcr('1'), pcr('7')], pcr08: [pcr('A')], trusted_ak: ['MFkw-ak'] } });
    expect(a.status).toBe('affirming');
    expect(a.vector.configuration).toBe(2);
  });

  it('is contraindicated when a PCR is not in its reference list, or a referenced PCR is absent', () => {
    const a = evaluateAttestationPolicy(policy, { claims, reference: { pcr07: [pcr('1')] } });
    expect(a.status).toBe('contraindicated');
    expect(a.vector.configuration).toBe(96);
    expect(evaluateAttestationPolicy(policy, { claims, reference: { pcr15: [pcr('0')] } }).status).toBe('contraindicated');
    expect(evaluateAttestationPolicy(policy, { claims, reference: { pcr08: [] } }).status).toBe('contraindicated');
  });

  it('is contraindicated when the AK is not in trusted_ak', () => {
    const a = evaluateAttestationPolicy(policy, { claims, reference: { trusted_ak: ['other'] } });
    expect(a.vector['instance-identity']).toBe(97);
    expect(a.status).toBe('contraindicated');
  });

  it('is none without TPM claims', () => {
    expect(evaluateAttestationPolicy(policy, { claims: {} }).status).toBe('none');
  });
});

describe('evaluateAttestationPolicy (custom rules)', () => {
  const custom = (status: string, vector: Record<string, string> = {}) =>
    compileAttestationPolicy({ id: 'c', type: 'cel', kind: 'attestation', rules: { status, vector } });

  it('gives the status rule the computed vector', () => {
    const p = custom('vector.executables == 3 ? "warning" : "none"', { executables: 'claims.tpm.pcr08.startsWith("aa") ? 3 : 0' });
    expect(evaluateAttestationPolicy(p, { claims }).status).toBe('warning');
  });

  it('fails (never defaults) on an unknown status, an out-of-range component or a failing rule', () => {
    const code = (f: () => unknown) => {
      try {
        f();
      } catch (e) {
        return (e as PolicyError).code;
      }
      return 'ok';
    };
    expect(code(() => evaluateAttestationPolicy(custom('"affirmed"'), { claims }))).toBe('POLICY_EVALUATION_FAILED');
    expect(code(() => evaluateAttestationPolicy(custom('"none"', { hardware: '300' }), { claims }))).toBe('POLICY_EVALUATION_FAILED');
    expect(code(() => evaluateAttestationPolicy(custom('claims.tpm.pcr99'), { claims }))).toBe('POLICY_EVALUATION_FAILED');
    expect(code(() => evaluateAttestationPolicy(custom('"none"', { hardware: 'int(claims.tpm.ak_public)' }), { claims }))).toBe('POLICY_EVALUATION_FAILED');
  });
});
