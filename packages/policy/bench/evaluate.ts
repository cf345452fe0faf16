/**
 * Policy evaluation cost per call, to compare with the KBS's per-flow budget (a script, not a test):
 *   pnpm --filter @keyhold/policy bench
 * Prints calls/s and µs/call for the default attestation policy, the affirming resource policy and
 * the SPIFFE-style identity rule, against a baseline of JSON.parse(JSON.stringify(claims)) measured
 * in the same run.
 */
import {
  AFFIRMING_RESOURCE_POLICY,
  DEFAULT_ATTESTATION_POLICY,
  compileAttestationPolicy,
  compileResourcePolicy,
  evaluateAttestationPolicy,
  evaluateResourcePolicy,
} from '@keyhold/policy';

const pcrs = Object.fromEntries(Array.from({ length: 24 }, (_, i) => [`pcr${String(i).padStart(2, '0')}`, 'ab'.repeat(32)]));
const claims = { tpm: { ...pcrs, ak_public: 'MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE'.repeat(3) } };
const reference = { pcr00: ['ab'.repeat(32)], pcr07: ['ab'.repeat(32)], pcr08: ['cd'.repeat(32), 'ab'.repeat(32)], trusted_ak: [claims.tpm.ak_public] };
const workload = 'spiffe://openshift.space-x.com/region/us-ykt/cluster_name/css/ns/space/sa/nasa/pod_name/mars-mission-7874fd667c-72mtp';
const tokenClaims = {
  iat: 1, exp: 2,
  submods: { cpu0: { 'ear.status': 'affirming', 'ear.veraison.annotated-evidence': { ...claims, init_data_claims: { workload_id: workload } } } },
};

function measure(name: string, fn: () => unknown, iterations = 20_000): number {
  for (let i = 0; i < 1000; i++) fn();
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < iterations; i++) fn();
  const us = Number(process.hrtime.bigint() - t0) / 1000 / iterations;
  console.log(`${name.padEnd(34)} ${(1e6 / us).toFixed(0).padStart(9)} calls/s ${us.toFixed(1).padStart(8)} µs/call`);
  return us;
}

const attestation = compileAttestationPolicy(DEFAULT_ATTESTATION_POLICY);
const affirming = compileResourcePolicy(AFFIRMING_RESOURCE_POLICY);
const spiffe = compileResourcePolicy({
  id: 'spiffe', type: 'cel', kind: 'resource',
  rule: 'ear.status == "affirming" && init_data_claims.workload_id.matches(r"^spiffe://openshift\\.space-x\\.com/region/us-[A-Za-z0-9._-]*/cluster_name/[A-Za-z0-9._-]+/ns/space/sa/nasa/pod_name/mars-mission[A-Za-z0-9._-]*$")',
});

const base = measure('baseline JSON round-trip of claims', () => JSON.parse(JSON.stringify(tokenClaims)));
const a = measure('default attestation policy', () => evaluateAttestationPolicy(attestation, { claims, reference, tee: 'tpm' }));
const r = measure('affirming resource policy', () => evaluateResourcePolicy(affirming, { tokenClaims, resourcePath: 'a/key/1' }));
const s = measure('SPIFFE identity resource policy', () => evaluateResourcePolicy(spiffe, { tokenClaims, resourcePath: 'a/key/1' }));
console.log(`ratios to baseline: attestation ${(a / base).toFixed(1)}x, affirming ${(r / base).toFixed(1)}x, spiffe ${(s / base).toFixed(1)}x`);
const t0 = process.hrtime.bigint();
for (let i = 0; i < 200; i++) compileAttestationPolicy(DEFAULT_ATTESTATION_POLICY);
console.log(`compile default attestation policy: ${(Number(process.hrtime.bigint() - t0) / 1000 / 200).toFixed(0)} µs`);
