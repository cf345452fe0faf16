/**
 * Policy evaluation cost per call, to compare with the KBS's per-flow budget (a script, not a test):
 *   pnpm --filter @keyhold/policy bench
 * Prints calls/s and µs/call for the default attestation policy, the affirming resource policy and
 * the SPIFFE-style identity rule, against a baseline of JSON.parse(JSON.stringify(claims)) measured
 * in the same run. Then the CEL cost bound (issue 12): the default policy with its run-time budget
 * against the same rules planned by @bufbuild/cel without one (the overhead of the budget), against
 * an evaluation in a worker thread (the alternative design: one message round trip per call), and how
 * long a policy bomb holds the event loop before it is stopped.
 */
import { Worker } from 'node:worker_threads';
import { celEnv, isCelError, parse, plan, type CelInput } from '@bufbuild/cel';
import { strings } from '@bufbuild/cel/ext';
import {
  AFFIRMING_RESOURCE_POLICY,
  DEFAULT_ATTESTATION_POLICY,
  DEFAULT_POLICY_LIMITS,
  compileAttestationPolicy,
  compileResourcePolicy,
  evaluateAttestationPolicy,
  evaluateResourcePolicy,
} from '@keyhold/policy';
import { compileRegex } from '../src/internal/cel-env.js';
import { toCelInput } from '../src/internal/cel-input.js';

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
  console.log(`${name.padEnd(44)} ${(1e6 / us).toFixed(0).padStart(9)} calls/s ${us.toFixed(1).padStart(8)} µs/call`);
  return us;
}

const attestation = compileAttestationPolicy(DEFAULT_ATTESTATION_POLICY);
const affirming = compileResourcePolicy(AFFIRMING_RESOURCE_POLICY);
const spiffe = compileResourcePolicy({
  id: 'spiffe', type: 'cel', kind: 'resource',
  rule: 'ear.status == "affirming" && init_data_claims.workload_id.matches(r"^spiffe://openshift\\.space-x\\.com/region/us-[A-Za-z0-9._-]*/cluster_name/[A-Za-z0-9._-]+/ns/space/sa/nasa/pod_name/mars-mission[A-Za-z0-9._-]*$")',
});

const base = measure('baseline JSON round-trip of claims', () => JSON.parse(JSON.stringify(tokenClaims)));
const a = measure('default attestation policy (with budget)', () => evaluateAttestationPolicy(attestation, { claims, reference, tee: 'tpm' }));
const r = measure('affirming resource policy', () => evaluateResourcePolicy(affirming, { tokenClaims, resourcePath: 'a/key/1' }));
const s = measure('SPIFFE identity resource policy', () => evaluateResourcePolicy(spiffe, { tokenClaims, resourcePath: 'a/key/1' }));
console.log(`ratios to baseline: attestation ${(a / base).toFixed(1)}x, affirming ${(r / base).toFixed(1)}x, spiffe ${(s / base).toFixed(1)}x`);
const t0 = process.hrtime.bigint();
for (let i = 0; i < 200; i++) compileAttestationPolicy(DEFAULT_ATTESTATION_POLICY);
console.log(`compile default attestation policy: ${(Number(process.hrtime.bigint() - t0) / 1000 / 200).toFixed(0)} µs`);

// ---- The run-time budget's overhead: the same rules, planned by @bufbuild/cel in a plain environment
// (no instrumentation, no budgeted functions; the same cached RE2), evaluated the same way (inputs
// converted, vector rules then status).
const plainEnv = celEnv({ funcs: strings, re2: { compile: compileRegex } });
const rules = DEFAULT_ATTESTATION_POLICY.rules;
const plainVector = Object.entries(rules.vector ?? {}).map(([k, src]) => [k, plan(plainEnv, parse(src as string))] as const);
const plainStatus = plan(plainEnv, parse(rules.status));
function unbudgeted(): unknown {
  const bindings: Record<string, CelInput> = { claims: toCelInput(claims), reference: toCelInput(reference), tee: 'tpm' };
  const vector = new Map<string, CelInput>([['instance-identity', 0n], ['configuration', 0n], ['executables', 0n], ['file-system', 0n], ['hardware', 0n], ['runtime-opaque', 0n], ['storage-opaque', 0n], ['sourced-data', 0n]]);
  for (const [k, p] of plainVector) {
    const v = p(bindings);
    if (isCelError(v)) throw new Error(`${k}: ${v.message}`);
    vector.set(k, v as bigint);
  }
  return plainStatus({ ...bindings, vector });
}
if (unbudgeted() !== evaluateAttestationPolicy(attestation, { claims, reference, tee: 'tpm' }).status) throw new Error('plain and budgeted evaluations disagree');
console.log('\nCEL cost bound (issue 12): where the run-time budget lives');
const plainUs = measure('default policy, @bufbuild/cel without budget', unbudgeted);
const budgetUs = measure('default policy, in process with budget', () => evaluateAttestationPolicy(attestation, { claims, reference, tee: 'tpm' }));

// The alternative: evaluate in a worker thread (time and heap limits there); one round trip per call.
// The worker loads the built package (dist/, from `pnpm run build`).
const worker = new Worker(
  `const { parentPort, workerData } = require('node:worker_threads');
   import(workerData.url).then((m) => {
     const p = m.compileAttestationPolicy(m.DEFAULT_ATTESTATION_POLICY);
     parentPort.on('message', (input) => parentPort.postMessage(m.evaluateAttestationPolicy(p, input).status));
     parentPort.postMessage('ready');
   });`,
  { eval: true, execArgv: [], workerData: { url: new URL('../dist/index.js', import.meta.url).href }, resourceLimits: { maxOldGenerationSizeMb: 64 } },
);
await new Promise((resolve) => worker.once('message', resolve));
const roundTrip = (): Promise<unknown> =>
  new Promise((resolve) => {
    worker.once('message', resolve);
    worker.postMessage({ claims, reference, tee: 'tpm' });
  });
for (let i = 0; i < 500; i++) await roundTrip();
const n = 5000;
const w0 = process.hrtime.bigint();
for (let i = 0; i < n; i++) await roundTrip();
const workerUs = Number(process.hrtime.bigint() - w0) / 1000 / n;
console.log(`${'default policy, in a worker (round trip)'.padEnd(44)} ${(1e6 / workerUs).toFixed(0).padStart(9)} calls/s ${workerUs.toFixed(1).padStart(8)} µs/call`);
await worker.terminate();
console.log(`budget overhead: ${(budgetUs / plainUs).toFixed(2)}x the unbudgeted evaluation (+${(budgetUs - plainUs).toFixed(1)} µs); a worker costs ${(workerUs / budgetUs).toFixed(2)}x the in-process budgeted evaluation`);

// How long a bomb that passes upload holds the event loop before it is stopped (it then denies).
const lit = (k: number): string => `([${Array.from({ length: k }, (_, i) => i).join(',')}] + [${k}])`;
const bombs: Record<string, string> = {
  'nested comprehensions': `${lit(100)}.all(a, ${lit(100)}.all(b, ${lit(100)}.all(c, a + b + c >= 0)))`,
  'absorbed by ||': `${lit(100)}.exists(a, ${lit(100)}.exists(b, ${lit(100)}.exists(c, c < 0))) || true`,
  'map of strings': `${lit(100)}.map(a, ${lit(100)}.map(b, "${'x'.repeat(200)}" + string(a) + string(b))).size() > 0`,
  'string growth': `"aaaaaaaaaa"${'.replace("a", "aaaaaaaaaa")'.repeat(9)}.size() > 0`,
  'regular expressions': `${lit(100)}.all(a, "${'ab'.repeat(2000)}".matches("^(ab)*$"))`,
  'list flattening': `${lit(200)}.map(a, ${lit(200)}.map(b, a)).exists(l, l.exists(x, x < 0)) == false`,
};
console.log(`\npolicy bombs that pass upload, stopped at run time (maxEvaluationCost ${DEFAULT_POLICY_LIMITS.maxEvaluationCost} units, backstop ${DEFAULT_POLICY_LIMITS.maxEvaluationMs} ms):`);
for (const [name, rule] of Object.entries(bombs)) {
  const p = compileResourcePolicy({ id: 'bomb', type: 'cel', kind: 'resource', rule });
  const times: number[] = [];
  let reason = '';
  for (let i = 0; i < 7; i++) {
    const b0 = performance.now();
    const d = evaluateResourcePolicy(p, { tokenClaims, resourcePath: 'a/key/1' });
    times.push(performance.now() - b0);
    if (d.allow) throw new Error(`bomb ${name} was allowed`);
    reason = d.reason ?? '';
  }
  times.sort((x, y) => x - y);
  console.log(`  ${name.padEnd(22)} denied after ${times[3]!.toFixed(2)} ms median (max ${times[6]!.toFixed(2)} ms): ${reason}`);
}
