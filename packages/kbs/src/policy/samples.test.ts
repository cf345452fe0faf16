import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import {
  AFFIRMING_RESOURCE_POLICY,
  ALLOW_ALL_RESOURCE_POLICY,
  DEFAULT_ATTESTATION_POLICY,
  DENY_ALL_RESOURCE_POLICY,
  compileAttestationPolicy,
  compileResourcePolicy,
  evaluateResourcePolicy,
} from '@keyhold/policy';

/** The sample policy files shipped in packages/kbs/policies/. */
async function sample(name: string): Promise<unknown> {
  return JSON.parse(await readFile(fileURLToPath(new URL(`../../policies/${name}`, import.meta.url)), 'utf8'));
}

function token(status: string, workloadId?: string, extra: Record<string, unknown> = {}) {
  return {
    submods: {
      cpu0: {
        'ear.status': status,
        'ear.veraison.annotated-evidence': { tpm: {}, init_data_claims: workloadId === undefined ? {} : { workload_id: workloadId }, ...extra },
      },
    },
  };
}

const ALLOWED = 'spiffe://openshift.space-x.com/region/us-ykt/cluster_name/css/ns/space/sa/nasa/pod_name/mars-mission-7874fd667c-72mtp';

describe('sample policies', () => {
  it('ship the same documents as the built-ins', async () => {
    expect(await sample('allow-all.json')).toEqual(ALLOW_ALL_RESOURCE_POLICY);
    expect(await sample('deny-all.json')).toMatchObject({ rule: DENY_ALL_RESOURCE_POLICY.rule });
    expect(await sample('affirming.json')).toMatchObject({ rule: AFFIRMING_RESOURCE_POLICY.rule });
    expect(((await sample('default-attestation.json')) as { rules: unknown }).rules).toEqual(DEFAULT_ATTESTATION_POLICY.rules);
    expect(compileAttestationPolicy(await sample('default-attestation.json')).id).toBe('default');
  });

  describe('spiffe-mars-mission', async () => {
    const policy = compileResourcePolicy(await sample('spiffe-mars-mission.json'));
    const decide = (status: string, id?: string) => evaluateResourcePolicy(policy, { tokenClaims: token(status, id), resourcePath: 'space/key/mission' }).allow;

    it('allows the mars-mission pod of service account nasa in namespace space in a us- region', () => {
      expect(decide('affirming', ALLOWED)).toBe(true);
      expect(decide('affirming', ALLOWED.replace('cluster_name/css', 'cluster_name/other-cluster'))).toBe(true);
      expect(decide('affirming', ALLOWED.replace('us-ykt', 'us-east'))).toBe(true);
      expect(decide('affirming', ALLOWED.replace('mars-mission-7874fd667c-72mtp', 'mars-mission'))).toBe(true);
    });

    it('refuses other regions, service accounts, namespaces, pods and trust domains', () => {
      for (const id of [
        ALLOWED.replace('region/us-ykt', 'region/eu-de'),
        ALLOWED.replace('sa/nasa', 'sa/esa'),
        ALLOWED.replace('ns/space', 'ns/sea'),
        ALLOWED.replace('pod_name/mars-mission', 'pod_name/moon-mission'),
        ALLOWED.replace('openshift.space-x.com', 'openshift.space-y.com'),
        ALLOWED.replace('openshift.space-x.com', 'openshiftXspace-x.com'),
        ALLOWED.replace('region/us-ykt', 'region/xus-ykt'),
        ALLOWED.replace('cluster_name/css/', 'cluster_name/css/extra/'),
        ALLOWED + '/extra',
        `${ALLOWED}\n`,
        'spiffe://evil.example/' + ALLOWED,
        ALLOWED.replace('mars-mission-7874', 'mars-mission-7874\u0000'),
        ALLOWED.replace('us-ykt', 'us-ykt?x=1'),
      ]) {
        expect(decide('affirming', id), id).toBe(false);
      }
    });

    it('refuses a non-affirming token or a missing workload id even for the allowed ID', () => {
      expect(decide('warning', ALLOWED)).toBe(false);
      expect(decide('affirming')).toBe(false);
    });
  });

  describe('tpm-resident-only', async () => {
    const policy = compileResourcePolicy(await sample('tpm-resident-only.json'));
    const decide = (status: string, extra: Record<string, unknown>) => evaluateResourcePolicy(policy, { tokenClaims: token(status, undefined, extra), resourcePath: 'default/key/k' }).allow;

    it('allows an affirming token whose tee key is TPM-resident, sealed or not', () => {
      expect(decide('affirming', { tee_key_residency: 'tpm', tee_key_sealed_pcrs: [] })).toBe(true);
      expect(decide('affirming', { tee_key_residency: 'tpm', tee_key_sealed_pcrs: [0, 7] })).toBe(true);
    });

    it('refuses a software tee key (no residency claim), another value, or a non-affirming token', () => {
      expect(decide('affirming', {})).toBe(false);
      expect(decide('affirming', { tee_key_residency: 'software' })).toBe(false);
      expect(decide('affirming', { tee_key_residency: 'TPM' })).toBe(false);
      expect(decide('warning', { tee_key_residency: 'tpm', tee_key_sealed_pcrs: [] })).toBe(false);
    });
  });
});
