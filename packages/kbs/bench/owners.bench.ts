/**
 * Benchmark: the cost of the workload-owner features on the release path, in process
 * (app.request, no network). Baseline: the built-in affirming policy and no audit trail. Then the
 * CEL policy engine with a repository-scoped policy, then that plus the audit trail of the embedded
 * state (a file, one fsync per batch of concurrent appends). Each variant releases the same secret with a bearer EAR token,
 * sequentially and with 32 requests in flight. Prints releases/s and ratios to the baseline.
 *
 *   node --conditions keyhold-source --import tsx packages/kbs/bench/owners.bench.ts [--seconds 2] [--rounds 3]
 */
import { generateKeyPairSync } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { pino } from 'pino';
import { createEmbeddedStore } from '@keyhold/kms-adapter';
import { createPolicyEngine } from '@keyhold/policy';
import { parseResourcePath } from '@keyhold/protocol';
import { createApp } from '../src/app.js';
import type { KbsDeps } from '../src/app-env.js';
import { defaultAttestationPolicy } from '../src/attestation/attestation-policy.js';
import { celResourcePolicy } from '../src/release/cel-resource-policy.js';
import { kmsResourceStore } from '../src/release/kms-resource-store.js';
import { affirmingResourcePolicy } from '../src/release/resource-policy.js';
import { openEmbeddedState, openStateAuditLog } from '../src/state/index.js';
import { earClaims, emptyVector } from '../src/token/ear-claims.js';
import { EarSigner } from '../src/token/ear-signer.js';

const { values } = parseArgs({ options: { seconds: { type: 'string', default: '2' }, rounds: { type: 'string', default: '3' } } });
const SECONDS = Number(values.seconds);
const ROUNDS = Number(values.rounds);

async function run(app: ReturnType<typeof createApp>, token: string, inflight: number): Promise<number> {
  const end = performance.now() + SECONDS * 1000;
  let n = 0;
  const worker = async (): Promise<void> => {
    while (performance.now() < end) {
      const res = await app.request('/kbs/v0/resource/a/key/1', { headers: { authorization: `Bearer ${token}` } });
      if (res.status !== 200) throw new Error(`release failed: ${res.status} ${await res.text()}`);
      await res.arrayBuffer();
      n++;
    }
  };
  await Promise.all(Array.from({ length: inflight }, worker));
  return n / SECONDS;
}

async function main(): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'keyhold-owners-bench-'));
  const store = await createEmbeddedStore({ backend: 'embedded', dir: join(dir, 'secrets') });
  const resources = kmsResourceStore(store);
  await resources.put(parseResourcePath('a/key/1'), new TextEncoder().encode('bench-secret'));
  const signer = await EarSigner.create({ privateKey: generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey, issuer: 'keyhold-kbs', lifetimeMs: 600_000 });
  const jwk = generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey.export({ format: 'jwk' }) as { x: string; y: string };
  const token = await signer.sign(
    earClaims({
      tee: 'tpm', status: 'affirming', vector: { ...emptyVector(), 'instance-identity': 2, hardware: 2 }, policyId: 'default@0',
      teeClaims: { ak_public: 'AAAA' }, reportDataHex: '00', nonce: 'n',
      teePubkey: { kty: 'EC', crv: 'P-256', alg: 'ECDH-ES+A256KW', x: jwk.x, y: jwk.y },
      initDataClaims: { workload_id: 'spiffe://openshift.space-x.com/region/us-ykt/cluster_name/css/ns/space/sa/nasa/pod_name/mars-mission-1' }, build: 'bench',
    }),
  );
  const state = await openEmbeddedState({ dataDir: join(dir, 'state'), sessionLimits: { maxSessions: 10, maxSessionBytes: 1 << 20 }, auditFile: join(dir, 'audit.jsonl') });
  const base: KbsDeps = {
    state, sessionTtlMs: 60_000, signer, appraisers: new Map(), attestationPolicy: defaultAttestationPolicy, resourcePolicy: affirmingResourcePolicy, resources,
    adminAuth: { authorize: () => Promise.reject(new Error('no admin')) }, logger: pino({ level: 'silent' }),
    maxBodyBytes: 1 << 20, build: 'bench',
  };
  const engine = createPolicyEngine({ store: state.policies });
  await engine.putResourcePolicy(
    { id: 'spiffe', type: 'cel', kind: 'resource', rule: 'ear.status == "affirming" && init_data_claims.workload_id.matches(r"^spiffe://openshift\\.space-x\\.com/region/us-[A-Za-z0-9._-]*/cluster_name/[A-Za-z0-9._-]+/ns/space/sa/nasa/pod_name/mars-mission[A-Za-z0-9._-]*$")' },
    { repository: 'a' },
  );
  const variants: [string, KbsDeps][] = [
    ['baseline: built-in affirming, no audit', base],
    ['CEL scoped policy (SPIFFE regex)', { ...base, resourcePolicy: celResourcePolicy(engine), owners: { policies: engine } }],
    ['CEL + file audit trail (fsync)', { ...base, resourcePolicy: celResourcePolicy(engine), owners: { policies: engine, audit: await openStateAuditLog(state) } }],
  ];
  console.log(`releases/s, best of ${ROUNDS} interleaved rounds of ${SECONDS} s per cell (in process, Node ${process.version})`);
  const apps = variants.map(([, deps]) => createApp(deps));
  for (const app of apps) await run(app, token, 1); // warm-up
  const best = variants.map(() => [0, 0] as [number, number]);
  for (let round = 0; round < ROUNDS; round++) {
    for (const [i, app] of apps.entries()) {
      const b = best[i]!;
      b[0] = Math.max(b[0], await run(app, token, 1));
      b[1] = Math.max(b[1], await run(app, token, 32));
    }
  }
  const [b0, b1] = best[0]!;
  for (const [i, [name]] of variants.entries()) {
    const [seq, par] = best[i]!;
    console.log(`${name.padEnd(42)} sequential ${seq.toFixed(0).padStart(6)} (${(seq / b0).toFixed(2)}x)   32 in flight ${par.toFixed(0).padStart(6)} (${(par / b1).toFixed(2)}x)`);
  }
  await state.close();
  await store.close();
  await rm(dir, { recursive: true, force: true });
}

await main();
