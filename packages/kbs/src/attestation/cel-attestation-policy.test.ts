import { afterAll, describe, expect, it } from 'vitest';
import { createMemoryPolicyStore, createPolicyEngine } from '@keyhold/policy';
import { openMemoryState } from '../state/index.js';
import type { KbsState } from '../state/ports.js';
import { celAttestationPolicy } from './cel-attestation-policy.js';
import type { TeeAppraisal } from './tee-appraiser.js';

const appraisal = (over: Partial<TeeAppraisal> = {}): TeeAppraisal => ({
  teeClaims: { pcr07: 'AB', ak_public: 'AAAA' },
  reportDataHex: '00',
  vector: { 'instance-identity': 2 },
  ...over,
});

const permissive = {
  id: 'default',
  type: 'cel',
  kind: 'attestation',
  rules: { vector: { hardware: '2', configuration: 'has(reference.pcr07) && claims.tpm.pcr07 in reference.pcr07 ? 2 : 96' }, status: 'vector["configuration"] == 2 ? "affirming" : "contraindicated"' },
};

const states: KbsState[] = [];
afterAll(async () => {
  for (const s of states) await s.close();
});

async function setup() {
  const store = createMemoryPolicyStore();
  const engine = createPolicyEngine({ store });
  const state = await openMemoryState({ sessionLimits: { maxSessions: 10, maxSessionBytes: 1 << 20 } });
  states.push(state);
  return { engine, references: state.referenceValues, policy: celAttestationPolicy({ engine, store }) };
}

describe('celAttestationPolicy', () => {
  it('uses the built-in policy (version 0) while none is stored, honouring tpm_pcrNN', async () => {
    const { references, policy } = await setup();
    await references.set({ tpm_pcr07: ['cd'] });
    const v = await policy.evaluate({ tee: 'tpm', appraisal: appraisal(), references: await references.snapshot() });
    expect(v).toMatchObject({ status: 'contraindicated', policyId: 'default', version: 0 });
    // Names only: the reference value and the quoted value never appear (issue 12, denial reasons).
    expect(v.reason).toBe('pcr07 does not match the reference value tpm_pcr07');
    await references.set({ tpm_pcr07: ['ab'] });
    expect(await policy.evaluate({ tee: 'tpm', appraisal: appraisal(), references: await references.snapshot() })).toMatchObject({ status: 'affirming', version: 0 });
  });

  it('runs the stored CEL policy, seeing tpm_pcrNN reference values also as pcrNN', async () => {
    const { engine, references, policy } = await setup();
    await engine.putAttestationPolicy(permissive);
    await references.set({ tpm_pcr07: ['AB'] });
    expect(await policy.evaluate({ tee: 'tpm', appraisal: appraisal(), references: await references.snapshot() })).toMatchObject({ status: 'affirming', policyId: 'default', version: 1 });
    await references.set({ tpm_pcr07: ['EF'] });
    const v = await policy.evaluate({ tee: 'tpm', appraisal: appraisal(), references: await references.snapshot() });
    expect(v).toMatchObject({ status: 'contraindicated', version: 1 });
    expect(v.reason).toBe('attestation policy default@1 gave contraindicated (configuration = 96): pcr07 does not match the reference value tpm_pcr07');
    expect(v.reason).not.toMatch(/\bEF\b|\bAB\b/i);
  });

  it('never lets a permissive policy hide a failed appraisal step (worse of both)', async () => {
    const { engine, references, policy } = await setup();
    await engine.putAttestationPolicy({ id: 'default', type: 'cel', kind: 'attestation', rules: { vector: { hardware: '2' }, status: '"affirming"' } });
    const v = await policy.evaluate({ tee: 'tpm', appraisal: appraisal({ vector: { 'instance-identity': 2, executables: 96 } }), references: await references.snapshot() });
    expect(v.status).toBe('contraindicated');
    expect(v.vector.executables).toBe(96);
    expect(v.vector.hardware).toBe(2);
  });

  it('fails closed (contraindicated, with the reason) when the stored policy cannot evaluate', async () => {
    const { engine, references, policy } = await setup();
    await engine.putAttestationPolicy({ id: 'default', type: 'cel', kind: 'attestation', rules: { vector: { hardware: 'int(claims.tpm.missing)' }, status: '"affirming"' } });
    const v = await policy.evaluate({ tee: 'tpm', appraisal: appraisal(), references: await references.snapshot() });
    expect(v).toMatchObject({ status: 'contraindicated', version: 1 });
    expect(v.reason).toMatch(/failed to evaluate/);
  });
});
