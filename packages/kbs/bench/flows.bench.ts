/**
 * Benchmark: simulated agents run complete KBS flows (auth → attest → resource) against
 * `keyhold-kbs serve` processes over plain HTTP (`--insecure-http`: the KBS's own work, not TLS).
 * The agents (bench/flow-agent.ts) are cheap — native node:crypto, a fresh tee key and a fresh
 * software-TPM quote over each nonce, the JWE decrypted and checked — so that the KBS, not the load
 * generator, is what is measured; the generator's own CPU per flow is printed too.
 *
 * Same-run baselines: the node:crypto floor of one flow's KBS crypto (`measureCryptoFloor()`, the
 * four operations a flow cannot avoid), measured in this process before the KBS starts, with the
 * ratio KBS CPU per flow ÷ floor; and GET /healthz requests/s on the same server and client.
 *
 *   node --import tsx packages/kbs/bench/flows.bench.ts
 *     [--concurrency 32[,200,...]]  agents in flight; a list runs each level in turn on the same KBS
 *     [--seconds 10] [--warmup 3]   measured and unmeasured (JIT, caches) seconds per level
 *     [--state embedded|redis] [--redis standalone|cluster] [--replicas N] [--workers N]
 *     [--compare]                   embedded state, then Redis state, same run, with their ratios
 *     [--rounds N]                  with --compare: both KBSs warmed up, then N measured windows of each,
 *                                   interleaved (E R E R ...); each figure is the median window's
 *     [--pin]                       KBS on core 0, this load generator on core 1 (taskset): flows/s per KBS core
 *     [--sessions N]                memory mode instead: open N sessions through /auth, print the KBS's RSS
 *     [--ak ecc|rsa] [--profile DIR] [--json]
 *
 * `--json` ends the output with one `BENCH_RESULT {...}` line (read by scripts/bench-summary.ts).
 * Environment: BENCH_KBS_EXTRA (TOML appended to the KBS config, `\n` for newlines),
 * BENCH_KBS_NODE_ARGS (node options for the KBS, e.g. `--perf-basic-prof`), BENCH_KBS_UV
 * (UV_THREADPOOL_SIZE for the KBS only). Asserts nothing about speed: it prints figures.
 */
import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import { loadavg } from 'node:os';
import { parseArgs } from 'node:util';
import type { Pool } from 'undici';
import { PROTOCOL_VERSION } from '@keyhold/protocol';
import { BenchAgent, type FlatJwe } from './flow-agent.js';
import { pinSelf, procCpuMs, rssMiB, startBenchKbs, startBenchRedis, threadCpuMs, type BenchKbs, type BenchRedis } from './bench-kbs.js';
import { measureCryptoFloor } from './crypto-floor.js';

const { values } = parseArgs({
  options: {
    concurrency: { type: 'string', default: '32' },
    seconds: { type: 'string', default: '10' },
    warmup: { type: 'string', default: '3' },
    'baseline-seconds': { type: 'string', default: '2' },
    ak: { type: 'string', default: 'ecc' },
    profile: { type: 'string' },
    replicas: { type: 'string', default: '1' },
    workers: { type: 'string', default: '1' },
    state: { type: 'string', default: 'embedded' },
    redis: { type: 'string', default: 'standalone' },
    compare: { type: 'boolean', default: false },
    rounds: { type: 'string', default: '1' },
    pin: { type: 'boolean', default: false },
    sessions: { type: 'string' },
    json: { type: 'boolean', default: false },
  },
});
const LEVELS = values.concurrency.split(',').map(Number);
const SECONDS = Number(values.seconds);
const WARMUP_SECONDS = Number(values.warmup);
const BASELINE_SECONDS = Number(values['baseline-seconds']);
const AK_ALG = values.ak === 'rsa' ? 'rsa' : 'ecc';
const REPLICAS = Number(values.replicas);
const WORKERS = Number(values.workers);
const STATE = values.state === 'redis' ? 'redis' : 'embedded';
const REDIS_KIND = values.redis === 'cluster' ? 'cluster' : 'standalone';
const SESSIONS = values.sessions === undefined ? undefined : Number(values.sessions);
const ROUNDS = Number(values.rounds);
if (!Number.isInteger(ROUNDS) || ROUNDS < 1) throw new TypeError('--rounds takes a positive integer');
if (LEVELS.some((n) => !Number.isInteger(n) || n < 1)) throw new TypeError('--concurrency takes positive integers');
if (!Number.isInteger(REPLICAS) || REPLICAS < 1 || !Number.isInteger(WORKERS) || WORKERS < 1) throw new TypeError('--replicas and --workers take positive integers');
if (STATE === 'embedded' && (REPLICAS > 1 || WORKERS > 1) && !values.compare) throw new TypeError('embedded state is one process: use --state redis for --replicas or --workers > 1');
if (SESSIONS !== undefined && (!Number.isInteger(SESSIONS) || SESSIONS < 1)) throw new TypeError('--sessions takes a positive integer');

const RESOURCE = 'default/key/bench';
const SECRET = Buffer.from('bench-secret-value-0123456789');
const KBS_CORE = '0';
const GENERATOR_CORE = '1';

type Step = 'auth' | 'attest' | 'resource' | 'flow';

/** One measured run at one concurrency level. */
interface LevelResult {
  readonly label: string;
  readonly state: 'embedded' | 'redis';
  readonly replicas: number;
  readonly workers: number;
  readonly pinned: boolean;
  readonly concurrency: number;
  readonly flows: number;
  readonly elapsedS: number;
  readonly flowsPerSec: number;
  readonly baseRps: number | undefined;
  readonly errors: Record<string, number>;
  readonly latencyMs: Record<Step, { p50: number; p95: number; p99: number }>;
  readonly kbsCpuMsPerFlow: number;
  /** KBS main threads (the event loops) and every other thread (GC helpers, libuv pool, JIT). */
  readonly kbsMainThreadMsPerFlow: number | undefined;
  readonly kbsOtherThreadsMsPerFlow: number | undefined;
  readonly kbsCoreBusy: number;
  readonly redisCpuMsPerFlow: number | undefined;
  /** Redis commands per flow, by command (cluster: summed over the masters). */
  readonly redisCommandsPerFlow: Record<string, number> | undefined;
  readonly generatorCpuMsPerFlow: number;
  readonly floorRatio: number;
  readonly peakRssMiB: number;
}

function pct(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

const sumCpu = async (pids: readonly (number | undefined)[]): Promise<number> => (await Promise.all(pids.map(procCpuMs))).reduce((a, b) => a + b, 0);

/** Cookie value of the session a `Set-Cookie` header opens. */
function sessionCookie(setCookie: string | string[] | undefined): string | undefined {
  return /kbs-session-id=([^;]+)/.exec(Array.isArray(setCookie) ? setCookie.join(';') : (setCookie ?? ''))?.[1];
}

const AUTH_BODY = JSON.stringify({ version: PROTOCOL_VERSION, tee: 'tpm', 'extra-params': {} });

/** One complete flow; returns the step boundaries (performance.now()). */
async function flow(agent: BenchAgent, next: () => Pool): Promise<[number, number, number, number]> {
  const t0 = performance.now();
  const a = await next().request({ path: '/kbs/v0/auth', method: 'POST', headers: { 'content-type': 'application/json' }, body: AUTH_BODY });
  const challenge = (await a.body.json()) as { nonce: string };
  const cookie = sessionCookie(a.headers['set-cookie']);
  if (a.statusCode !== 200 || cookie === undefined) throw new Error(`auth ${a.statusCode}`);
  const t1 = performance.now();
  const teeKey = agent.newTeeKey();
  const body = await agent.attestationBody(challenge.nonce, teeKey);
  const at = await next().request({ path: '/kbs/v0/attest', method: 'POST', headers: { 'content-type': 'application/json', cookie: `kbs-session-id=${cookie}` }, body });
  await at.body.dump();
  if (at.statusCode !== 200) throw new Error(`attest ${at.statusCode}`);
  const t2 = performance.now();
  const r = await next().request({ path: `/kbs/v0/resource/${RESOURCE}`, method: 'GET', headers: { cookie: `kbs-session-id=${cookie}` } });
  const jwe = (await r.body.json()) as FlatJwe;
  if (r.statusCode !== 200) throw new Error(`resource ${r.statusCode}`);
  if (!agent.decrypt(jwe, teeKey).equals(SECRET)) throw new Error('wrong secret');
  return [t0, t1, t2, performance.now()];
}

interface Scenario {
  readonly state: 'embedded' | 'redis';
  readonly replicas: number;
  readonly workers: number;
}

function labelOf(s: Scenario, pinned: boolean): string {
  const where = s.workers > 1 ? `${s.workers} workers (--workers)` : `${s.replicas} ${s.replicas > 1 ? 'replicas' : 'process'}`;
  return `${s.state === 'redis' ? `redis state (${REDIS_KIND})` : 'embedded state'}, ${where}${pinned ? ', KBS pinned to core 0, generator to core 1' : ''}`;
}

async function runLevels(s: Scenario, agents: readonly BenchAgent[], redis: BenchRedis | undefined, floorMs: number): Promise<LevelResult[]> {
  const kbs = await startKbs(s, redis);
  try {
    await kbs.setup(agents.map((a) => a.akPublic), RESOURCE, SECRET);
    process.stdout.write(`KBS started: pid ${kbs.mainPids.join(', ')}\n`);
    const out: LevelResult[] = [];
    for (const concurrency of LEVELS) out.push(await runLevel(s, kbs, agents.slice(0, concurrency), redis, floorMs));
    return out;
  } finally {
    await kbs.stop();
  }
}

function startKbs(s: Scenario, redis: BenchRedis | undefined): Promise<BenchKbs> {
  return startBenchKbs({
    state: s.state,
    ...(redis !== undefined ? { redis } : {}),
    replicas: s.replicas,
    workers: s.workers,
    ...(values.pin ? { pinCores: KBS_CORE } : {}),
    ...(values.profile !== undefined ? { profileDir: values.profile } : {}),
    extraToml: (process.env['BENCH_KBS_EXTRA'] ?? '').replace(/\\n/g, '\n'),
    nodeArgs: process.env['BENCH_KBS_NODE_ARGS']?.split(' ').filter(Boolean) ?? [],
    ...(process.env['BENCH_KBS_UV'] !== undefined ? { uvThreadpoolSize: process.env['BENCH_KBS_UV'] } : {}),
  });
}

/**
 * --compare --rounds N: both KBSs started and warmed up, then N measured windows of each at every
 * level, interleaved, so that both states see the same machine (this box is shared and its load
 * drifts over minutes). Returns, per level, the window with the median KBS CPU per flow of each state.
 */
async function runInterleaved(agents: readonly BenchAgent[], redis: BenchRedis, floorMs: number): Promise<LevelResult[]> {
  const scenarios: Scenario[] = [
    { state: 'embedded', replicas: 1, workers: 1 },
    { state: 'redis', replicas: REPLICAS, workers: WORKERS },
  ];
  const servers: BenchKbs[] = [];
  try {
    for (const s of scenarios) {
      const kbs = await startKbs(s, s.state === 'redis' ? redis : undefined);
      servers.push(kbs);
      await kbs.setup(agents.map((a) => a.akPublic), RESOURCE, SECRET);
      process.stdout.write(`KBS started (${s.state}): pid ${kbs.mainPids.join(', ')}\n`);
    }
    const out: LevelResult[] = [];
    for (const concurrency of LEVELS) {
      const windows: LevelResult[][] = scenarios.map(() => []);
      for (let round = 0; round < ROUNDS; round++) {
        for (const [i, s] of scenarios.entries()) {
          const r = await runLevel(s, servers[i]!, agents.slice(0, concurrency), s.state === 'redis' ? redis : undefined, floorMs, { warmupSeconds: round === 0 ? WARMUP_SECONDS : 0 });
          windows[i]!.push(r);
          process.stdout.write(`round ${round + 1}/${ROUNDS}, ${s.state}: ${r.flowsPerSec.toFixed(1)} flows/s, KBS CPU per flow ${r.kbsCpuMsPerFlow.toFixed(3)} ms\n`);
        }
      }
      const [emb, red] = windows as [LevelResult[], LevelResult[]];
      process.stdout.write(`per-round redis ÷ embedded KBS CPU per flow: ${emb.map((e, k) => (red[k]!.kbsCpuMsPerFlow / e.kbsCpuMsPerFlow).toFixed(3)).join(', ')}\n`);
      for (const w of windows) out.push([...w].sort((a, b) => a.kbsCpuMsPerFlow - b.kbsCpuMsPerFlow)[Math.floor(w.length / 2)]!);
    }
    return out;
  } finally {
    for (const kbs of servers) await kbs.stop();
  }
}

async function runLevel(s: Scenario, kbs: BenchKbs, agents: readonly BenchAgent[], redis: BenchRedis | undefined, floorMs: number, opts: { warmupSeconds?: number } = {}): Promise<LevelResult> {
  const warmupSeconds = opts.warmupSeconds ?? WARMUP_SECONDS;
  const concurrency = agents.length;
  const pools = kbs.pools(Math.max(1, Math.ceil(concurrency / kbs.mainPids.length)));
  let rr = 0;
  /** Per-request round-robin over the replicas: no stickiness, a flow's steps land anywhere. */
  const next = (): Pool => pools[rr++ % pools.length]!;
  try {
    let baseRps: number | undefined;
    if (BASELINE_SECONDS > 0) {
      const deadline = performance.now() + BASELINE_SECONDS * 1000;
      let count = 0;
      await Promise.all(
        agents.map(async () => {
          while (performance.now() < deadline) {
            const r = await next().request({ path: '/healthz', method: 'GET' });
            await r.body.dump();
            count++;
          }
        }),
      );
      baseRps = count / BASELINE_SECONDS;
    }
    const errors = new Map<string, number>();
    let lat: Record<Step, number[]> = { auth: [], attest: [], resource: [], flow: [] };
    let flows = 0;
    const runFlows = (seconds: number): Promise<unknown> => {
      const deadline = performance.now() + seconds * 1000;
      return Promise.all(
        agents.map(async (agent) => {
          while (performance.now() < deadline) {
            try {
              const [t0, t1, t2, t3] = await flow(agent, next);
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
    if (warmupSeconds > 0) {
      await runFlows(warmupSeconds);
      lat = { auth: [], attest: [], resource: [], flow: [] };
      flows = 0;
      // Errors are kept: a failure while warming up is still a failure.
    }
    const pids = await kbs.pids();
    const cpu0 = await sumCpu(pids);
    const threads0 = s.workers > 1 ? undefined : await Promise.all(pids.map(threadCpuMs));
    const redisCpu0 = redis !== undefined ? await sumCpu(redis.pids()) : 0;
    const commands0 = await redis?.commandCounts();
    const gen0 = process.cpuUsage();
    const started = performance.now();
    await runFlows(SECONDS);
    const elapsedS = (performance.now() - started) / 1000;
    const kbsCpuMs = (await sumCpu(pids)) - cpu0;
    const gen = process.cpuUsage(gen0);
    const redisCpuMs = redis !== undefined ? (await sumCpu(redis.pids())) - redisCpu0 : undefined;
    const commands1 = await redis?.commandCounts();
    let redisCommandsPerFlow: Record<string, number> | undefined;
    if (commands0 !== undefined && commands1 !== undefined) {
      redisCommandsPerFlow = {};
      // INFO itself is the benchmark's, not the KBS's.
      for (const [cmd, n] of commands1) if (cmd !== 'info' && n > (commands0.get(cmd) ?? 0)) redisCommandsPerFlow[cmd] = (n - (commands0.get(cmd) ?? 0)) / Math.max(1, flows);
    }
    let main: number | undefined;
    let other: number | undefined;
    if (threads0 !== undefined) {
      const threads1 = await Promise.all(pids.map(threadCpuMs));
      main = 0;
      other = 0;
      pids.forEach((pid, i) => {
        for (const [tid, t1] of threads1[i]!) {
          const t0 = threads0[i]!.get(tid) ?? { user: 0, sys: 0 };
          const d = t1.user - t0.user + (t1.sys - t0.sys);
          if (tid === pid) main! += d;
          else other! += d;
        }
      });
    }
    let peakRssMiB = 0;
    for (const pid of pids) peakRssMiB = Math.max(peakRssMiB, (await rssMiB(pid)).peak);
    const stats = (v: number[]): { p50: number; p95: number; p99: number } => {
      const sorted = v.sort((a, b) => a - b);
      return { p50: pct(sorted, 50), p95: pct(sorted, 95), p99: pct(sorted, 99) };
    };
    const perFlow = (ms: number): number => ms / Math.max(1, flows);
    return {
      label: labelOf(s, values.pin),
      state: s.state,
      replicas: s.replicas,
      workers: s.workers,
      pinned: values.pin,
      concurrency,
      flows,
      elapsedS,
      flowsPerSec: flows / elapsedS,
      baseRps,
      errors: Object.fromEntries(errors),
      latencyMs: { auth: stats(lat.auth), attest: stats(lat.attest), resource: stats(lat.resource), flow: stats(lat.flow) },
      kbsCpuMsPerFlow: perFlow(kbsCpuMs),
      kbsMainThreadMsPerFlow: main === undefined ? undefined : perFlow(main),
      kbsOtherThreadsMsPerFlow: other === undefined ? undefined : perFlow(other),
      kbsCoreBusy: kbsCpuMs / (elapsedS * 1000),
      redisCpuMsPerFlow: redisCpuMs === undefined ? undefined : perFlow(redisCpuMs),
      redisCommandsPerFlow,
      generatorCpuMsPerFlow: perFlow((gen.user + gen.system) / 1000),
      floorRatio: perFlow(kbsCpuMs) / floorMs,
      peakRssMiB,
    };
  } finally {
    await Promise.all(pools.map((p) => p.close()));
  }
}

function report(r: LevelResult, floorMs: number): void {
  const out = process.stdout;
  const f2 = (n: number | undefined): string => (n === undefined ? '-' : n.toFixed(2));
  out.write(`--- ${r.label}, ${r.concurrency} concurrent agents\n`);
  out.write(`complete flows:        ${r.flows} in ${r.elapsedS.toFixed(2)} s = ${r.flowsPerSec.toFixed(1)} flows/s\n`);
  if (r.baseRps !== undefined) out.write(`baseline GET /healthz: ${r.baseRps.toFixed(0)} req/s (same server and client); flow requests/s ÷ healthz = ${((3 * r.flowsPerSec) / r.baseRps).toFixed(3)}\n`);
  const errs = Object.entries(r.errors);
  out.write(`errors:                ${errs.map(([k, v]) => `${k}×${v}`).join(', ') || 0} (warm-up included)\n`);
  out.write('latency ms        p50      p95      p99\n');
  for (const [k, v] of Object.entries(r.latencyMs)) out.write(`  ${k.padEnd(10)} ${v.p50.toFixed(2).padStart(8)} ${v.p95.toFixed(2).padStart(8)} ${v.p99.toFixed(2).padStart(8)}\n`);
  out.write(`KBS CPU per flow:      ${r.kbsCpuMsPerFlow.toFixed(3)} ms (all threads${r.workers > 1 ? ', primary and workers' : r.replicas > 1 ? `, sum over ${r.replicas} replicas` : ''}) = ${r.floorRatio.toFixed(2)}× the crypto floor (${floorMs.toFixed(3)} ms)\n`);
  if (r.kbsMainThreadMsPerFlow !== undefined) out.write(`                       main thread ${f2(r.kbsMainThreadMsPerFlow)} ms, other threads ${f2(r.kbsOtherThreadsMsPerFlow)} ms\n`);
  out.write(`KBS CPU busy:          ${(100 * r.kbsCoreBusy).toFixed(0)}% of one core${r.pinned ? ' (its core); capacity 1000 ÷ CPU per flow = ' + (1000 / r.kbsCpuMsPerFlow).toFixed(0) + ' flows/s per KBS core' : ''}\n`);
  if (r.redisCpuMsPerFlow !== undefined) out.write(`Redis CPU per flow:    ${r.redisCpuMsPerFlow.toFixed(3)} ms\n`);
  if (r.redisCommandsPerFlow !== undefined) {
    const cmds = Object.entries(r.redisCommandsPerFlow).sort((a, b) => b[1] - a[1]);
    out.write(`Redis commands per flow: ${cmds.reduce((a, [, n]) => a + n, 0).toFixed(1)} (${cmds.map(([c, n]) => `${c} ${n.toFixed(2)}`).join(', ')})\n`);
  }
  out.write(`generator CPU per flow: ${r.generatorCpuMsPerFlow.toFixed(3)} ms (this process, all threads)\n`);
  out.write(`KBS peak RSS:          ${r.peakRssMiB.toFixed(1)} MiB (largest process)\n`);
}

/** Memory mode: N pending sessions opened through /auth, the KBS process's RSS before and after. */
async function measureSessions(n: number): Promise<Record<string, number>> {
  const kbs = await startKbs({ state: STATE, replicas: 1, workers: 1 }, undefined);
  const pool = kbs.pools(64)[0]!;
  try {
    const pid = kbs.mainPids[0]!;
    const auth = async (count: number): Promise<void> => {
      let left = count;
      await Promise.all(
        Array.from({ length: 64 }, async () => {
          while (left-- > 0) {
            const r = await pool.request({ path: '/kbs/v0/auth', method: 'POST', headers: { 'content-type': 'application/json' }, body: AUTH_BODY });
            await r.body.dump();
            if (r.statusCode !== 200) throw new Error(`auth ${r.statusCode}`);
          }
        }),
      );
    };
    // Warm the server up (JIT, buffers) before the baseline reading.
    await auth(2000);
    await new Promise((r) => setTimeout(r, 500));
    const before = (await rssMiB(pid)).rss;
    const t0 = performance.now();
    await auth(n);
    const seconds = (performance.now() - t0) / 1000;
    await new Promise((r) => setTimeout(r, 1000));
    const after = await rssMiB(pid);
    const perSession = ((after.rss - before) * 1024 * 1024) / n;
    process.stdout.write(`--- ${n} pending sessions (${STATE} state), opened through POST /kbs/v0/auth in ${seconds.toFixed(1)} s (${(n / seconds).toFixed(0)} auth/s)\n`);
    process.stdout.write(`KBS RSS:               ${before.toFixed(1)} MiB before, ${after.rss.toFixed(1)} MiB after (peak ${after.peak.toFixed(1)} MiB); ${perSession.toFixed(0)} bytes per session (2000 warm-up sessions included before)\n`);
    return { sessions: n, rssBeforeMiB: before, rssAfterMiB: after.rss, peakRssMiB: after.peak, bytesPerSession: perSession, authPerSec: n / seconds };
  } finally {
    await pool.close();
    await kbs.stop();
  }
}

async function main(): Promise<void> {
  if (values.pin) pinSelf(GENERATOR_CORE);
  const load = (): string => loadavg().map((l) => l.toFixed(2)).join(' ');
  const result: Record<string, unknown> = { bench: 'kbs-flows', loadAverageStart: loadavg()[0] };
  if (SESSIONS !== undefined) {
    process.stdout.write(`keyhold KBS session memory benchmark; load average ${load()}\n`);
    result['sessions'] = await measureSessions(SESSIONS);
  } else {
    // The floor first, in this fresh process, before the KBS competes for the CPU.
    const floor = await measureCryptoFloor({ iterations: 400, rounds: 3 });
    const floorMs = floor.perFlow.cpuUs / 1000;
    result['floorMs'] = floorMs;
    const newAkKey = (): KeyObject => (AK_ALG === 'rsa' ? generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey : generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey);
    const ekKey = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey;
    const agents = await BenchAgent.createMany(Math.max(...LEVELS), newAkKey, ekKey, AK_ALG);
    const needRedis = values.compare || STATE === 'redis';
    const redis = needRedis ? await startBenchRedis(REDIS_KIND) : undefined;
    const runs: LevelResult[] = [];
    try {
      process.stdout.write(
        `keyhold KBS flow benchmark (plain HTTP): ${LEVELS.join(', ')} concurrent agents, ${SECONDS} s per level after ${WARMUP_SECONDS} s warm-up, AK ${AK_ALG}, tee key EC P-256, round-robin per request; load average ${load()}\n`,
      );
      process.stdout.write(`crypto floor per flow:  ${floorMs.toFixed(3)} ms CPU (node:crypto: ${Object.entries(floor.perOp).map(([k, v]) => `${k} ${(v.cpuUs / 1000).toFixed(3)}`).join(', ')})\n`);
      const scenarios: Scenario[] = values.compare
        ? [{ state: 'embedded', replicas: 1, workers: 1 }, { state: 'redis', replicas: REPLICAS, workers: WORKERS }]
        : [{ state: STATE, replicas: REPLICAS, workers: WORKERS }];
      if (values.compare && ROUNDS > 1 && redis !== undefined) {
        for (const r of await runInterleaved(agents, redis, floorMs)) {
          report(r, floorMs);
          runs.push(r);
        }
      } else {
        for (const s of scenarios) {
          for (const r of await runLevels(s, agents, s.state === 'redis' ? redis : undefined, floorMs)) {
            report(r, floorMs);
            runs.push(r);
          }
        }
      }
      if (values.compare) {
        process.stdout.write(`--- redis ÷ embedded (same run, same concurrency${ROUNDS > 1 ? `; median windows of ${ROUNDS}, interleaved` : ''})\n`);
        for (const e of runs.filter((r) => r.state === 'embedded')) {
          const r = runs.find((x) => x.state === 'redis' && x.concurrency === e.concurrency);
          if (r === undefined) continue;
          const ratio = (a: number, b: number): string => (a / b).toFixed(3);
          process.stdout.write(`${e.concurrency} agents: throughput ${ratio(r.flowsPerSec, e.flowsPerSec)}, KBS CPU per flow ${ratio(r.kbsCpuMsPerFlow, e.kbsCpuMsPerFlow)} (goal ≤ 1.25), KBS+Redis CPU per flow ${ratio(r.kbsCpuMsPerFlow + (r.redisCpuMsPerFlow ?? 0), e.kbsCpuMsPerFlow)}\n`);
        }
      }
      result['runs'] = runs;
    } finally {
      await redis?.stop();
      await BenchAgent.closeAll(agents);
    }
  }
  result['loadAverageEnd'] = loadavg()[0];
  process.stdout.write(`load average at the end: ${load()}\n`);
  if (values.json) process.stdout.write(`BENCH_RESULT ${JSON.stringify(result)}\n`);
}

main().catch((err: unknown) => {
  process.stderr.write(`bench failed: ${err instanceof Error ? err.stack : String(err)}\n`);
  process.exitCode = 1;
});
