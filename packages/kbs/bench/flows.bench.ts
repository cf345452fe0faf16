/**
 * Benchmark: N concurrent simulated agents run complete KBS flows (auth → attest → resource)
 * against `keyhold-kbs` processes. Agents quote with the agent library's software TPM (an AK
 * registered as trusted; no swtpm in the loop) and decrypt the JWE like a real agent.
 *
 * With `--replicas N --state redis` the KBS is N processes sharing one Redis (standalone, or a
 * 3-master Cluster with `--redis cluster`) and one data dir (token signing key, embedded secrets);
 * the client spreads requests round-robin per request (no stickiness), so the steps of one flow
 * land on different replicas. `--compare` runs embedded state (one process) and then Redis state in
 * the same run and prints their ratios: throughput, KBS CPU per flow (summed over replicas) and
 * Redis CPU per flow (the redis-server processes, from /proc).
 *
 * Prints flows/s, per-step latency percentiles, errors, KBS peak RSS and CPU per flow, next to a
 * baseline measured in the same run (GET /healthz requests/s on the same servers and client).
 *
 *   node --import tsx packages/kbs/bench/flows.bench.ts [--concurrency 32] [--seconds 10] [--ak ecc|rsa]
 *        [--replicas 1] [--state embedded|redis] [--redis standalone|cluster] [--compare] [--warmup 2] [--profile DIR]
 *
 * Environment: BENCH_KBS_EXTRA (TOML appended to the KBS config, `\n` for newlines) and
 * BENCH_KBS_UV (UV_THREADPOOL_SIZE for the KBS processes only).
 */
import { generateKeyPairSync } from 'node:crypto';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { SignJWT, flattenedDecrypt, type FlattenedJWE } from 'jose';
import { Pool } from 'undici';
import { fitReportData, runtimeDataDigest, PROTOCOL_VERSION, TPM_REPORT_DATA_BYTES } from '@keyhold/protocol';
import { collectTpmEvidence, createSoftwareTpm, generateTeeKeyPair, loadOrCreateAk, tpm2bPublicToSpkiDer, type TpmDevice, type TpmKey } from '@keyhold/attestation-agent';
import { freePort, spawnProcess, startRedis, startRedisCluster, waitForPort, type SpawnedProcess } from '@keyhold/test-harness';

const { values } = parseArgs({
  options: {
    concurrency: { type: 'string', default: '32' },
    seconds: { type: 'string', default: '10' },
    ak: { type: 'string', default: 'ecc' },
    profile: { type: 'string' },
    replicas: { type: 'string', default: '1' },
    state: { type: 'string', default: 'embedded' },
    redis: { type: 'string', default: 'standalone' },
    compare: { type: 'boolean', default: false },
    warmup: { type: 'string', default: '2' },
  },
});
/** Seconds of unmeasured flows first, so every replica's JIT and caches are warm before counting. */
const WARMUP_SECONDS = Number(values.warmup);
const CONCURRENCY = Number(values.concurrency);
const SECONDS = Number(values.seconds);
const AK_ALG = values.ak === 'rsa' ? 'rsa' : 'ecc';
const REPLICAS = Number(values.replicas);
const STATE = values.state === 'redis' ? 'redis' : 'embedded';
const REDIS_KIND = values.redis === 'cluster' ? 'cluster' : 'standalone';
if (!Number.isInteger(REPLICAS) || REPLICAS < 1) throw new TypeError('--replicas must be a positive integer');
if (STATE === 'embedded' && REPLICAS > 1 && !values.compare) throw new TypeError('embedded state is one process: use --state redis for --replicas > 1');
const here = dirname(fileURLToPath(import.meta.url));
const KBS_BIN = resolve(here, '..', 'bin', 'keyhold-kbs.js');

/** CPU time (user+system, all threads) a process used so far, from /proc. */
async function procCpuMs(pid: number | undefined): Promise<number> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => '');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const ticks = Number(fields[11]) + Number(fields[12]);
  return (ticks * 1000) / 100;
}

/** Per-thread user and system CPU ms of a process, keyed by thread id (the main thread's id is the pid). */
async function threadCpuMs(pid: number | undefined): Promise<Map<number, { user: number; sys: number }>> {
  const out = new Map<number, { user: number; sys: number }>();
  const tids = await readdir(`/proc/${pid}/task`).catch(() => [] as string[]);
  for (const tid of tids) {
    const stat = await readFile(`/proc/${pid}/task/${tid}/stat`, 'utf8').catch(() => '');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    out.set(Number(tid), { user: (Number(fields[11]) * 1000) / 100, sys: (Number(fields[12]) * 1000) / 100 });
  }
  return out;
}

const sumCpu = async (pids: readonly (number | undefined)[]): Promise<number> => (await Promise.all(pids.map(procCpuMs))).reduce((a, b) => a + b, 0);

function pct(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}
const fmt = (n: number): string => n.toFixed(2).padStart(8);

/** The Redis the `redis` scenario runs on: its `[state]` lines and its server pids. */
interface RedisTarget {
  readonly stateToml: string;
  readonly pids: () => (number | undefined)[];
  stop(): Promise<void>;
}

async function startRedisTarget(): Promise<RedisTarget> {
  if (REDIS_KIND === 'cluster') {
    const c = await startRedisCluster({ masters: 3 });
    return { stateToml: `cluster_nodes = [${c.nodes.map((n) => `"${n.host}:${n.port}"`).join(', ')}]\n`, pids: () => c.nodes.map((n) => n.pid), stop: () => c.stop() };
  }
  const r = await startRedis();
  return { stateToml: `url = "${r.url}"\n`, pids: () => [r.pid], stop: () => r.stop() };
}

interface Agent {
  readonly tpm: TpmDevice;
  readonly ak: TpmKey;
}

interface Result {
  readonly label: string;
  readonly replicas: number;
  readonly flows: number;
  readonly elapsedS: number;
  readonly baseRps: number;
  readonly errors: Map<string, number>;
  readonly lat: Record<'auth' | 'attest' | 'resource' | 'flow', number[]>;
  readonly kbsCpuMs: number;
  readonly mainThread: { user: number; sys: number };
  readonly otherThreads: { user: number; sys: number };
  readonly redisCpuMs: number | undefined;
  readonly genCpuMs: number;
  readonly peakRssMiB: number;
}

async function runScenario(state: 'embedded' | 'redis', replicas: number, agents: readonly Agent[], redis: RedisTarget | undefined): Promise<Result> {
  const dir = await mkdtemp(join(tmpdir(), 'keyhold-bench-'));
  const admin = generateKeyPairSync('ed25519');
  await writeFile(join(dir, 'admin.pub.pem'), admin.publicKey.export({ format: 'pem', type: 'spki' }));
  // All simulated agents share one loopback address: lift the per-address /auth rate limit, which
  // would otherwise (correctly) throttle them. Everything else is the KBS's default configuration
  // (embedded KMS, audit trail on, metrics on); Redis state takes a fresh key prefix.
  const stateToml = state === 'redis' ? `[state]\nbackend = "redis"\nkey_prefix = "b${Date.now().toString(36)}"\n${redis!.stateToml}` : '';
  await writeFile(join(dir, 'kbs.toml'), '[rate_limit]\nauth_per_sec = 1000000\nauth_burst = 1000000\n' + stateToml + (process.env['BENCH_KBS_EXTRA'] ?? '').replace(/\\n/g, '\n'));
  const dataDir = join(dir, 'kbs');
  await mkdir(dataDir, { recursive: true });
  const procs: SpawnedProcess[] = [];
  const ports: number[] = [];
  try {
    for (let i = 0; i < replicas; i++) {
      const port = await freePort();
      const profileArgs = values.profile !== undefined ? ['--cpu-prof', `--cpu-prof-dir=${values.profile}`] : [];
      const proc = spawnProcess({
        name: `keyhold-kbs-${i}`,
        command: process.execPath,
        env: { ...process.env, ...(process.env['BENCH_KBS_UV'] !== undefined ? { UV_THREADPOOL_SIZE: process.env['BENCH_KBS_UV'] } : {}) },
        // Replicas share the data dir: one generated token signing key (replica 0 creates it) and the embedded secrets.
        args: [...profileArgs, KBS_BIN, 'serve', '--listen', `127.0.0.1:${port}`, '--data-dir', dataDir, '--admin-public-key', join(dir, 'admin.pub.pem'), '--log-level', 'warn', '--config', join(dir, 'kbs.toml')],
      });
      procs.push(proc);
      ports.push(port);
      await waitForPort(port, proc, { timeoutMs: 30_000 });
    }
    const perPool = Math.max(1, Math.ceil(CONCURRENCY / replicas));
    const pools = ports.map((p) => new Pool(`http://127.0.0.1:${p}`, { connections: perPool, pipelining: 1 }));
    let rr = 0;
    /** Per-request round-robin over the replicas: no stickiness, a flow's steps land anywhere. */
    const next = (): Pool => pools[rr++ % pools.length]!;

    const akSpki = Buffer.from(tpm2bPublicToSpkiDer(agents[0]!.ak.publicArea)).toString('base64');
    const adminToken = await new SignJWT({}).setProtectedHeader({ alg: 'EdDSA' }).setExpirationTime('1h').sign(admin.privateKey);
    const adminHeaders = { authorization: `Bearer ${adminToken}` };
    const payload = Buffer.from(JSON.stringify({ trusted_ak: [akSpki] })).toString('base64');
    const setup = async (r: Awaited<ReturnType<Pool['request']>>, what: string): Promise<void> => {
      const text = await r.body.text();
      if (r.statusCode !== 200) throw new Error(`${what}: ${r.statusCode} ${text}`);
    };
    await setup(await pools[0]!.request({ path: '/kbs/v0/reference-value', method: 'POST', headers: { ...adminHeaders, 'content-type': 'application/json' }, body: JSON.stringify({ version: '0.1.0', type: 'sample', payload }) }), 'reference value');
    const SECRET = Buffer.from('bench-secret-value-0123456789');
    await setup(await pools[0]!.request({ path: '/kbs/v0/resource/default/key/bench', method: 'POST', headers: adminHeaders, body: SECRET }), 'resource');

    // Baseline in the same run: GET /healthz at the same concurrency, same round-robin.
    const baseSeconds = Math.min(3, SECONDS);
    const baseDeadline = performance.now() + baseSeconds * 1000;
    let baseCount = 0;
    await Promise.all(
      Array.from({ length: CONCURRENCY }, async () => {
        while (performance.now() < baseDeadline) {
          const r = await next().request({ path: '/healthz', method: 'GET' });
          await r.body.dump();
          baseCount++;
        }
      }),
    );

    let lat: Record<'auth' | 'attest' | 'resource' | 'flow', number[]> = { auth: [] as number[], attest: [] as number[], resource: [] as number[], flow: [] as number[] };
    let flows = 0;
    const errors = new Map<string, number>();
    const runFlows = (seconds: number) => {
      const deadline = performance.now() + seconds * 1000;
      return Promise.all(
        agents.map(async ({ tpm, ak }) => {
          while (performance.now() < deadline) {
            const t0 = performance.now();
            try {
              const a = await next().request({ path: '/kbs/v0/auth', method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ version: PROTOCOL_VERSION, tee: 'tpm', 'extra-params': {} }) });
              const ch = (await a.body.json()) as { nonce: string };
              const setCookie = a.headers['set-cookie'];
              const cookie = /kbs-session-id=([^;]+)/.exec(Array.isArray(setCookie) ? setCookie.join(';') : (setCookie ?? ''))?.[1];
              if (a.statusCode !== 200 || cookie === undefined) throw new Error(`auth ${a.statusCode}`);
              const t1 = performance.now();
              const teeKey = await generateTeeKeyPair('ec');
              const digest = runtimeDataDigest({ nonce: ch.nonce, teePubkey: teeKey.publicJwk, additionalEvidence: '' });
              const evidence = await collectTpmEvidence(tpm, ak, fitReportData(digest, TPM_REPORT_DATA_BYTES));
              const body = JSON.stringify({ 'runtime-data': { nonce: ch.nonce, 'tee-pubkey': teeKey.publicJwk }, 'tee-evidence': { primary_evidence: evidence, additional_evidence: '' } });
              const at = await next().request({ path: '/kbs/v0/attest', method: 'POST', headers: { 'content-type': 'application/json', cookie: `kbs-session-id=${cookie}` }, body });
              await at.body.dump();
              if (at.statusCode !== 200) throw new Error(`attest ${at.statusCode}`);
              const t2 = performance.now();
              const rr2 = await next().request({ path: '/kbs/v0/resource/default/key/bench', method: 'GET', headers: { cookie: `kbs-session-id=${cookie}` } });
              const jwe = (await rr2.body.json()) as FlattenedJWE;
              if (rr2.statusCode !== 200) throw new Error(`resource ${rr2.statusCode}`);
              const { plaintext } = await flattenedDecrypt(jwe, teeKey.privateKey);
              if (!Buffer.from(plaintext).equals(SECRET)) throw new Error('wrong secret');
              const t3 = performance.now();
              lat.auth.push(t1 - t0);
              lat.attest.push(t2 - t1);
              lat.resource.push(t3 - t2);
              lat.flow.push(t3 - t0);
              flows++;
            } catch (err) {
              const k = (err as Error).message;
              errors.set(k, (errors.get(k) ?? 0) + 1);
            }
          }
        }),
      );
    };
    if (WARMUP_SECONDS > 0) {
      await runFlows(WARMUP_SECONDS);
      lat = { auth: [], attest: [], resource: [], flow: [] };
      flows = 0;
      // Errors are kept: a failure while warming up is still a failure.
    }
    const kbsCpu0 = await sumCpu(procs.map((p) => p.pid));
    const threads0 = await Promise.all(procs.map((p) => threadCpuMs(p.pid)));
    const redisCpu0 = redis !== undefined ? await sumCpu(redis.pids()) : 0;
    const genCpu0 = process.cpuUsage();
    const started = performance.now();
    await runFlows(SECONDS);
    const elapsedS = (performance.now() - started) / 1000;
    const kbsCpuMs = (await sumCpu(procs.map((p) => p.pid))) - kbsCpu0;
    const redisCpuMs = redis !== undefined ? (await sumCpu(redis.pids())) - redisCpu0 : undefined;
    const threads1 = await Promise.all(procs.map((p) => threadCpuMs(p.pid)));
    const genCpu = process.cpuUsage(genCpu0);
    let peakRssMiB = 0;
    for (const p of procs) {
      const status = await readFile(`/proc/${p.pid}/status`, 'utf8').catch(() => '');
      peakRssMiB = Math.max(peakRssMiB, Number(/VmHWM:\s+(\d+)/.exec(status)?.[1] ?? NaN) / 1024);
    }
    const mainThread = { user: 0, sys: 0 };
    const otherThreads = { user: 0, sys: 0 };
    procs.forEach((p, i) => {
      for (const [tid, t1] of threads1[i]!) {
        const t0 = threads0[i]!.get(tid) ?? { user: 0, sys: 0 };
        const into = tid === p.pid ? mainThread : otherThreads;
        into.user += t1.user - t0.user;
        into.sys += t1.sys - t0.sys;
      }
    });
    await Promise.all(pools.map((p) => p.close()));
    return {
      label: state === 'redis' ? `redis state (${REDIS_KIND}), ${replicas} replica${replicas > 1 ? 's' : ''}` : 'embedded state, 1 process',
      replicas,
      flows,
      elapsedS,
      baseRps: baseCount / baseSeconds,
      errors,
      lat,
      kbsCpuMs,
      mainThread,
      otherThreads,
      redisCpuMs,
      genCpuMs: (genCpu.user + genCpu.system) / 1000,
      peakRssMiB,
    };
  } finally {
    await Promise.all(procs.map((p) => p.stop()));
    await rm(dir, { recursive: true, force: true });
  }
}

function report(r: Result): void {
  const out = process.stdout;
  const perFlow = (ms: number): string => (ms / r.flows).toFixed(2);
  out.write(`--- ${r.label}\n`);
  out.write(`complete flows:        ${r.flows} in ${r.elapsedS.toFixed(2)} s = ${(r.flows / r.elapsedS).toFixed(1)} flows/s\n`);
  out.write(`baseline GET /healthz: ${r.baseRps.toFixed(0)} req/s (same servers, same client)\n`);
  out.write(`ratio: ${((3 * r.flows) / r.elapsedS / r.baseRps).toFixed(3)} (flow requests/s ÷ healthz req/s)\n`);
  out.write(`errors:                ${[...r.errors].map(([k, v]) => `${k}×${v}`).join(', ') || 0} (warm-up included)\n`);
  out.write('latency ms        p50      p95      p99\n');
  for (const [k, v] of Object.entries(r.lat)) {
    const s = v.sort((a, b) => a - b);
    out.write(`  ${k.padEnd(10)} ${fmt(pct(s, 50))} ${fmt(pct(s, 95))} ${fmt(pct(s, 99))}\n`);
  }
  out.write(`KBS peak RSS:          ${r.peakRssMiB.toFixed(1)} MiB (largest replica)\n`);
  out.write(`KBS CPU per flow:      main threads ${perFlow(r.mainThread.user)} user + ${perFlow(r.mainThread.sys)} sys ms, other threads ${perFlow(r.otherThreads.user)} user + ${perFlow(r.otherThreads.sys)} sys ms (sum over ${r.replicas} replica${r.replicas > 1 ? 's' : ''})\n`);
  out.write(`CPU per flow:          KBS ${perFlow(r.kbsCpuMs)} ms, ${r.redisCpuMs !== undefined ? `Redis ${perFlow(r.redisCpuMs)} ms, ` : ''}load generator ${perFlow(r.genCpuMs)} ms (all threads; 2 cores = 2000 ms/s)\n`);
}

async function main(): Promise<void> {
  // One AK key shared by the simulated agents (each has its own software TPM and PCRs).
  const akKey = AK_ALG === 'rsa' ? generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey : generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
  const agents = await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      const tpm = createSoftwareTpm({ akKeys: { [AK_ALG]: akKey } });
      const { ak } = await loadOrCreateAk(tpm, { persistentHandle: 0x81010002, persist: true, alg: AK_ALG });
      return { tpm, ak };
    }),
  );
  const needRedis = values.compare || STATE === 'redis';
  const redis = needRedis ? await startRedisTarget() : undefined;
  const results: Result[] = [];
  try {
    process.stdout.write(`keyhold KBS flow benchmark: ${CONCURRENCY} concurrent agents, ${SECONDS}s per run, AK ${AK_ALG}, tee key EC P-256, round-robin per request\n`);
    if (values.compare) {
      results.push(await runScenario('embedded', 1, agents, undefined));
      report(results[0]!);
      results.push(await runScenario('redis', REPLICAS, agents, redis));
      report(results[1]!);
      const [e, r] = results as [Result, Result];
      const ratio = (a: number, b: number): string => (a / b).toFixed(3);
      process.stdout.write('--- redis ÷ embedded (same run)\n');
      process.stdout.write(`throughput (flows/s):  ${ratio(r.flows / r.elapsedS, e.flows / e.elapsedS)}\n`);
      process.stdout.write(`KBS CPU per flow:      ${ratio(r.kbsCpuMs / r.flows, e.kbsCpuMs / e.flows)} (goal ≤ 1.25)\n`);
      process.stdout.write(`KBS+Redis CPU per flow: ${ratio((r.kbsCpuMs + (r.redisCpuMs ?? 0)) / r.flows, e.kbsCpuMs / e.flows)}\n`);
    } else {
      results.push(await runScenario(STATE, STATE === 'redis' ? REPLICAS : 1, agents, redis));
      report(results[0]!);
    }
  } finally {
    await redis?.stop();
    await Promise.all(agents.map((a) => a.tpm.close()));
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`bench failed: ${err instanceof Error ? err.stack : String(err)}\n`);
  process.exitCode = 1;
});
