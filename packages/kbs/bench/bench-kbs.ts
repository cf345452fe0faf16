/**
 * The KBS processes a benchmark runs against: `keyhold-kbs serve` as spawned processes (one or
 * more replicas, or one `--workers N` cluster), optionally pinned to CPU cores with `taskset`,
 * with embedded or Redis state, plus the /proc readings the benchmarks report (CPU time of a
 * process tree, per-thread CPU, RSS).
 *
 * Plain HTTP (`--insecure-http`): the benchmarks measure the KBS's own work, not TLS.
 */
import { execFileSync } from 'node:child_process';
import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { SignJWT } from 'jose';
import { Pool } from 'undici';
import { freePort, spawnProcess, startRedis, startRedisCluster, type SpawnedProcess } from '@keyhold/test-harness';

const here = dirname(fileURLToPath(import.meta.url));
export const KBS_BIN = resolve(here, '..', 'bin', 'keyhold-kbs.js');
const CLOCK_TICKS_PER_S = 100;

/** CPU time (user+system, all threads) of one process so far, from /proc; 0 once it is gone. */
export async function procCpuMs(pid: number | undefined): Promise<number> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => '');
  if (stat === '') return 0;
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / CLOCK_TICKS_PER_S;
}

/** Per-thread user and system CPU ms of a process, keyed by thread id (the main thread's id is the pid). */
export async function threadCpuMs(pid: number | undefined): Promise<Map<number, { user: number; sys: number }>> {
  const out = new Map<number, { user: number; sys: number }>();
  const tids = await readdir(`/proc/${pid}/task`).catch(() => [] as string[]);
  for (const tid of tids) {
    const stat = await readFile(`/proc/${pid}/task/${tid}/stat`, 'utf8').catch(() => '');
    if (stat === '') continue;
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    out.set(Number(tid), { user: (Number(fields[11]) * 1000) / CLOCK_TICKS_PER_S, sys: (Number(fields[12]) * 1000) / CLOCK_TICKS_PER_S });
  }
  return out;
}

/** A process and all its descendants (cluster workers), from /proc's parent links. */
export async function processTree(root: number): Promise<number[]> {
  const parents = new Map<number, number>();
  for (const e of await readdir('/proc').catch(() => [] as string[])) {
    if (!/^\d+$/.test(e)) continue;
    const stat = await readFile(`/proc/${e}/stat`, 'utf8').catch(() => '');
    if (stat === '') continue;
    parents.set(Number(e), Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]));
  }
  const out = [root];
  for (let i = 0; i < out.length; i++) for (const [pid, ppid] of parents) if (ppid === out[i]) out.push(pid);
  return out;
}

/** Current and peak resident set size of a process, MiB. */
export async function rssMiB(pid: number | undefined): Promise<{ rss: number; peak: number }> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8').catch(() => '');
  const kib = (name: string): number => Number(new RegExp(`${name}:\\s+(\\d+)`).exec(status)?.[1] ?? NaN);
  return { rss: kib('VmRSS') / 1024, peak: kib('VmHWM') / 1024 };
}

/** Pin this process (all its threads) to `cores`, e.g. "1". */
export function pinSelf(cores: string): void {
  execFileSync('taskset', ['-a', '-p', '-c', cores, String(process.pid)], { stdio: 'ignore' });
}

/** The Redis a `redis` scenario runs on: its `[state]` lines and its server pids. */
export interface BenchRedis {
  readonly stateToml: string;
  readonly pids: () => (number | undefined)[];
  /** Commands served so far, by command name, summed over the servers (`INFO commandstats`). */
  commandCounts(): Promise<Map<string, number>>;
  stop(): Promise<void>;
}

/** `INFO commandstats` of the servers at `ports`, summed per command. */
function commandCounts(ports: readonly number[]): Map<string, number> {
  const out = new Map<string, number>();
  for (const port of ports) {
    const text = execFileSync('redis-cli', ['-h', '127.0.0.1', '-p', String(port), 'info', 'commandstats'], { encoding: 'utf8' });
    for (const m of text.matchAll(/^cmdstat_([^:]+):calls=(\d+)/gm)) out.set(m[1]!, (out.get(m[1]!) ?? 0) + Number(m[2]));
  }
  return out;
}

export async function startBenchRedis(kind: 'standalone' | 'cluster'): Promise<BenchRedis> {
  if (kind === 'cluster') {
    const c = await startRedisCluster({ masters: 3 });
    return {
      stateToml: `cluster_nodes = [${c.nodes.map((n) => `"${n.host}:${n.port}"`).join(', ')}]\n`,
      pids: () => c.nodes.map((n) => n.pid),
      commandCounts: async () => commandCounts(c.nodes.map((n) => n.port)),
      stop: () => c.stop(),
    };
  }
  const r = await startRedis();
  return { stateToml: `url = "${r.url}"\n`, pids: () => [r.pid], commandCounts: async () => commandCounts([r.port]), stop: () => r.stop() };
}

export interface BenchKbsOptions {
  readonly state: 'embedded' | 'redis';
  readonly redis?: BenchRedis;
  /** Separate `keyhold-kbs serve` processes on one data dir (Redis state for more than one). */
  readonly replicas?: number;
  /** `keyhold-kbs serve --workers N` (node:cluster, Redis state): one process tree. */
  readonly workers?: number;
  /** `taskset -c <cores>` for every KBS process. */
  readonly pinCores?: string;
  /** `--cpu-prof` into this directory. */
  readonly profileDir?: string;
  /** TOML appended to the benchmark's config. */
  readonly extraToml?: string;
  /** Extra node options for the KBS processes (e.g. `--perf-basic-prof`). */
  readonly nodeArgs?: readonly string[];
  /** UV_THREADPOOL_SIZE for the KBS processes only. */
  readonly uvThreadpoolSize?: string;
}

export interface BenchKbs {
  /** One HTTP pool per listening address (replicas), `connections` each. */
  pools(connections: number): Pool[];
  /** Every KBS process now (cluster primaries with their workers). */
  pids(): Promise<number[]>;
  /** The first process's pid (the cluster primary). */
  readonly mainPids: readonly number[];
  /** Store the AK as trusted (`trusted_ak` reference value) and the secret at `path`. */
  setup(akPublics: readonly string[], path: string, secret: Uint8Array): Promise<void>;
  stop(): Promise<void>;
}

/** Start the KBS processes; every default is the KBS's own except the /auth rate limit (all agents share one address). */
export async function startBenchKbs(opts: BenchKbsOptions): Promise<BenchKbs> {
  const dir = await mkdtemp(join(tmpdir(), 'keyhold-bench-'));
  const admin = generateKeyPairSync('ed25519');
  await writeFile(join(dir, 'admin.pub.pem'), admin.publicKey.export({ format: 'pem', type: 'spki' }));
  const replicas = opts.replicas ?? 1;
  const workers = opts.workers ?? 1;
  if (opts.state === 'embedded' && (replicas > 1 || workers > 1)) throw new TypeError('embedded state is one process: use Redis state for replicas or workers');
  // All simulated agents share one loopback address: lift the per-address /auth rate limit, which
  // would otherwise (correctly) throttle them. Everything else is the KBS's default configuration
  // (embedded KMS, audit trail on, metrics on); Redis state takes a fresh key prefix.
  const stateToml = opts.state === 'redis' ? `[state]\nbackend = "redis"\nkey_prefix = "b${Date.now().toString(36)}"\n${opts.redis!.stateToml}` : '';
  await writeFile(join(dir, 'kbs.toml'), `max_sessions = 1000000\n[rate_limit]\nauth_per_sec = 1000000\nauth_burst = 1000000\n${stateToml}${opts.extraToml ?? ''}`);
  const dataDir = join(dir, 'kbs');
  await mkdir(dataDir, { recursive: true });
  const procs: SpawnedProcess[] = [];
  const urls: string[] = [];
  const stop = async (): Promise<void> => {
    await Promise.all(procs.map((p) => p.stop()));
    // BENCH_KBS_OUTPUT=FILE keeps the (last 100 KB of the) KBS processes' output, e.g. for --trace-deopt.
    const keep = process.env['BENCH_KBS_OUTPUT'];
    if (keep !== undefined) await writeFile(keep, procs.map((p) => p.output()).join('\n'));
    await rm(dir, { recursive: true, force: true });
  };
  try {
    for (let i = 0; i < replicas; i++) {
      const port = await freePort();
      const nodeArgs = [...(opts.profileDir !== undefined ? ['--cpu-prof', `--cpu-prof-dir=${opts.profileDir}`] : []), ...(opts.nodeArgs ?? [])];
      const kbsArgs = [KBS_BIN, 'serve', '--insecure-http', '--listen', `127.0.0.1:${port}`, '--data-dir', dataDir, '--admin-public-key', join(dir, 'admin.pub.pem'), '--log-level', 'warn', '--config', join(dir, 'kbs.toml'), ...(workers > 1 ? ['--workers', String(workers)] : [])];
      const pinned = opts.pinCores !== undefined;
      const proc = spawnProcess({
        name: `keyhold-kbs-${i}`,
        // taskset execs node: the pid stays the KBS's.
        command: pinned ? 'taskset' : process.execPath,
        args: pinned ? ['-c', opts.pinCores!, process.execPath, ...nodeArgs, ...kbsArgs] : [...nodeArgs, ...kbsArgs],
        env: { ...process.env, ...(opts.uvThreadpoolSize !== undefined ? { UV_THREADPOOL_SIZE: opts.uvThreadpoolSize } : {}) },
      });
      procs.push(proc);
      urls.push(await waitForUrl(proc));
    }
  } catch (err) {
    await stop();
    throw err;
  }
  const adminToken = await new SignJWT({}).setProtectedHeader({ alg: 'EdDSA' }).setExpirationTime('1h').sign(admin.privateKey as KeyObject);
  const mainPids = procs.map((p) => p.pid!);
  return {
    mainPids,
    pools: (connections) => urls.map((u) => new Pool(u, { connections, pipelining: 1 })),
    async pids() {
      if (workers <= 1) return mainPids;
      return (await Promise.all(mainPids.map(processTree))).flat();
    },
    async setup(akPublics, path, secret) {
      const pool = new Pool(urls[0]!, { connections: 1 });
      try {
        const headers = { authorization: `Bearer ${adminToken}` };
        const payload = Buffer.from(JSON.stringify({ trusted_ak: akPublics })).toString('base64');
        const check = async (r: Awaited<ReturnType<Pool['request']>>, what: string): Promise<void> => {
          const text = await r.body.text();
          if (r.statusCode !== 200) throw new Error(`${what}: ${r.statusCode} ${text}`);
        };
        await check(await pool.request({ path: '/kbs/v0/reference-value', method: 'POST', headers: { ...headers, 'content-type': 'application/json' }, body: JSON.stringify({ version: '0.1.0', type: 'sample', payload }) }), 'reference value');
        await check(await pool.request({ path: `/kbs/v0/resource/${path}`, method: 'POST', headers, body: secret }), 'resource');
      } finally {
        await pool.close();
      }
    },
    stop,
  };
}

/** The URL `keyhold-kbs serve` prints on stdout once it (and every worker) listens. */
async function waitForUrl(proc: SpawnedProcess, timeoutMs = 60_000): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const m = /^(http:\/\/[^\s]+)$/m.exec(proc.output());
    if (m !== null) return m[1]!;
    if (proc.child.exitCode !== null || Date.now() > deadline) throw new Error(`${proc.name} did not start:\n${proc.output().slice(-2000)}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
