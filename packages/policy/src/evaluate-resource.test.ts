import { describe, expect, it } from 'vitest';
import { compileResourcePolicy } from './compile.js';
import { evaluateResourcePolicy } from './evaluate-resource.js';
import { AFFIRMING_RESOURCE_POLICY, ALLOW_ALL_RESOURCE_POLICY, DENY_ALL_RESOURCE_POLICY } from './defaults.js';
import { PolicyError } from './errors.js';

/** EAR-shaped token claims (PROTOCOL-NOTES §1), as the KBS issues them. */
function tokenClaims(status: string, initDataClaims?: Record<string, unknown>) {
  return {
    eat_profile: 'tag:github.com,2024:confidential-containers/Trustee',
    iat: 1_764_000_000,
    exp: 1_764_000_300,
    submods: {
      cpu0: {
        'ear.status': status,
        'ear.trustworthiness-vector': { 'instance-identity': 2, hardware: 2 },
        'ear.appraisal-policy-id': 'default',
        'ear.veraison.annotated-evidence': {
          tpm: { pcr08: 'ab'.repeat(32) },
          ...(initDataClaims === undefined ? {} : { init_data_claims: initDataClaims }),
        },
      },
    },
  };
}

const rule = (r: string) => compileResourcePolicy({ id: 't', type: 'cel', kind: 'resource', rule: r });

describe('evaluateResourcePolicy', () => {
  const path = 'repo1/key/1';

  it('applies the allow-all, deny-all and affirming samples', () => {
    const affirming = tokenClaims('affirming');
    const warning = tokenClaims('warning');
    expect(evaluateResourcePolicy(compileResourcePolicy(ALLOW_ALL_RESOURCE_POLICY), { tokenClaims: warning, resourcePath: path }).allow).toBe(true);
    expect(evaluateResourcePolicy(compileResourcePolicy(DENY_ALL_RESOURCE_POLICY), { tokenClaims: affirming, resourcePath: path })).toEqual({
      allow: false,
      policyId: 'deny-all',
      version: 0,
      reason: 'policy rule evaluated to false',
    });
    const p = compileResourcePolicy(AFFIRMING_RESOURCE_POLICY);
    expect(evaluateResourcePolicy(p, { tokenClaims: affirming, resourcePath: path })).toEqual({ allow: true, policyId: 'affirming', version: 0 });
    expect(evaluateResourcePolicy(p, { tokenClaims: warning, resourcePath: path }).allow).toBe(false);
    expect(evaluateResourcePolicy(p, { tokenClaims: {}, resourcePath: path }).allow).toBe(false);
  });

  it('exposes Trustee-style input["resource-path"], plugin and query', () => {
    const p = rule('input["resource-path"] == "repo1/key/1" && input.plugin == "resource" && input.query.v == "2" && input.submods.cpu0["ear.status"] == "affirming"');
    expect(evaluateResourcePolicy(p, { tokenClaims: tokenClaims('affirming'), resourcePath: path, query: { v: '2' } }).allow).toBe(true);
    expect(evaluateResourcePolicy(p, { tokenClaims: tokenClaims('affirming'), resourcePath: 'repo1/key/2', query: { v: '2' } }).allow).toBe(false);
  });

  it('exposes the resource path parts and the annotated evidence', () => {
    const p = rule('repository == "repo1" && resource_type == "key" && resource_tag == "1" && evidence.tpm.pcr08.startsWith("abab")');
    expect(evaluateResourcePolicy(p, { tokenClaims: tokenClaims('affirming'), resourcePath: path }).allow).toBe(true);
  });

  it('denies (fail closed) when the rule hits a missing claim or a type mismatch', () => {
    const p = rule('init_data_claims.workload_id == "x"');
    const d = evaluateResourcePolicy(p, { tokenClaims: tokenClaims('affirming'), resourcePath: path });
    expect(d.allow).toBe(false);
    expect(d.reason).toMatch(/^policy rule failed/);
    const t = rule('ear.status > 3');
    expect(evaluateResourcePolicy(t, { tokenClaims: tokenClaims('affirming'), resourcePath: path }).allow).toBe(false);
  });

  it('denies when a dyn rule gives a non-bool at runtime', () => {
    const p = rule('ear["trustworthiness-vector"].hardware');
    expect(evaluateResourcePolicy(p, { tokenClaims: tokenClaims('affirming'), resourcePath: path })).toMatchObject({ allow: false, reason: 'policy rule did not give a bool' });
  });

  it('matches patterns that come from input correctly (compiled-pattern cache)', () => {
    const p = rule('repository.matches(query.p)');
    const d = (pat: string) => evaluateResourcePolicy(p, { tokenClaims: {}, resourcePath: path, query: { p: pat } });
    expect(d('^repo[0-9]$').allow).toBe(true);
    expect(d('^x').allow).toBe(false);
    expect(d('^repo[0-9]$').allow).toBe(true);
    expect(d('(a+)+$').allow).toBe(false); // RE2: linear time, no catastrophic backtracking
    expect(d('(').reason).toMatch(/^policy rule failed/);
  });

  it('refuses hostile input with a typed error', () => {
    let deep: Record<string, unknown> = {};
    for (let i = 0; i < 100; i++) deep = { a: deep };
    expect(() => evaluateResourcePolicy(rule('true'), { tokenClaims: deep, resourcePath: path })).toThrow(PolicyError);
    expect(() => evaluateResourcePolicy(rule('true'), { tokenClaims: {}, resourcePath: '../x/y' })).toThrow(/resource path/);
  });
});
