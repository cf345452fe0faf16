/**
 * Event log and IMA benchmark (issues 4 and 11). Run from the repo root after building the CLI:
 *   pnpm exec tsc -b packages/cli && node --import tsx packages/verifier/bench/eventlog.bench.ts
 * (KEYHOLD_BENCH_RUNS=N sets the number of whole-process runs, default 5; `--json` adds one
 * `BENCH_RESULT {...}` line at the end, read by scripts/bench-summary.ts.)
 * Prints figures; asserts nothing. Baseline: tpm2_eventlog on the same file in the same run.
 */
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { closeSync, existsSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { appraiseIma, parseEventLog, parseImaLog, parseRuntimePolicy, replayEventLog, verifyImaAgainstQuote, replayIma } from '../src/index.js';

const EVENTS = 100_000;
/** Figures for `--json`. */
const result: Record<string, unknown> = { bench: 'eventlog', events: EVENTS };
const IMA_ENTRIES = 100_000;
const repoRoot = fileURLToPath(new URL('../../../', import.meta.url));
const source = path.resolve(repoRoot, '../shared/corpus/eventlogs/ubuntu-2404-amd-sevsnp.bin');
const cli = path.join(repoRoot, 'packages/cli/dist/bin/keyhold.js');

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] as number;
}

/** Repeats the events after the Spec ID header until the log holds EVENTS events after it. */
function buildBigLog(): Buffer {
  const bytes = readFileSync(source);
  const log = parseEventLog(bytes);
  const body = log.events.slice(1);
  const headerEnd = body[0]!.offset;
  const chunks: Buffer[] = [bytes.subarray(0, headerEnd)];
  const ends = body.map((e, i) => (body[i + 1]?.offset ?? bytes.length) - e.offset);
  for (let i = 0; i < EVENTS; i++) {
    const e = body[i % body.length]!;
    chunks.push(bytes.subarray(e.offset, e.offset + ends[i % body.length]!));
  }
  return Buffer.concat(chunks);
}

/** User+system CPU of this process's waited-for children, from /proc/self/stat (cutime, cstime), in ms. */
function childrenCpuMs(): number | undefined {
  try {
    const stat = readFileSync('/proc/self/stat', 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // After the command name: field 3 is state, so cutime/cstime (fields 16/17) are at 13/14 here.
    return ((Number(fields[13]) + Number(fields[14])) * 1000) / CLOCK_TICKS;
  } catch {
    return undefined;
  }
}
const CLOCK_TICKS = Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout.trim()) || 100;

interface Run {
  readonly wallMs: number;
  readonly cpuMs: number | undefined;
  readonly status: number | null;
}

/** One whole-process run, stdout to /dev/null: wall time, and CPU (user+sys) of the child. */
function runOnce(cmd: string, args: string[]): Run {
  const devnull = openSync('/dev/null', 'w');
  const c0 = childrenCpuMs();
  const t0 = performance.now();
  const r = spawnSync(cmd, args, { stdio: ['ignore', devnull, 'pipe'], maxBuffer: 1 << 20 });
  const wallMs = performance.now() - t0;
  const c1 = childrenCpuMs();
  closeSync(devnull);
  return { wallMs, cpuMs: c0 !== undefined && c1 !== undefined ? c1 - c0 : undefined, status: r.status };
}

interface Timing {
  readonly wallMs: number;
  readonly cpuMs: number | undefined;
  readonly walls: number[];
  readonly cpus: number[];
  readonly status: number | null;
}

/** Runs every command `runs` times, interleaved (so a load change hits all alike); medians per command. */
function timeInterleaved(commands: Record<string, [string, string[]]>, runs: number): Record<string, Timing> {
  const all: Record<string, Run[]> = {};
  for (let i = 0; i < runs; i++) {
    for (const [name, [cmd, args]] of Object.entries(commands)) (all[name] ??= []).push(runOnce(cmd, args));
  }
  const out: Record<string, Timing> = {};
  for (const [name, rs] of Object.entries(all)) {
    const cpus = rs.map((r) => r.cpuMs).filter((c): c is number => c !== undefined);
    out[name] = {
      wallMs: median(rs.map((r) => r.wallMs)),
      cpuMs: cpus.length === rs.length ? median(cpus) : undefined,
      walls: rs.map((r) => r.wallMs),
      cpus,
      status: rs[rs.length - 1]?.status ?? null,
    };
  }
  return out;
}

function imaLine(i: number): { line: string; path: string; digest: string } {
  const p = `/usr/lib/pkg${i % 977}/file-${i}.so`;
  const digest = createHash('sha256').update(p).digest();
  const alg = Buffer.from('sha256:\0');
  const le = (n: number): Buffer => Buffer.from(Uint32Array.of(n).buffer);
  const data = Buffer.concat([le(alg.length + 32), alg, digest, le(Buffer.byteLength(p) + 1), Buffer.from(p), Buffer.alloc(1)]);
  return { line: `10 ${createHash('sha1').update(data).digest('hex')} ima-ng sha256:${digest.toString('hex')} ${p}`, path: p, digest: digest.toString('hex') };
}

const dir = mkdtempSync(path.join(tmpdir(), 'keyhold-bench-'));
const big = buildBigLog();
const bigFile = path.join(dir, 'eventlog-100k.bin');
writeFileSync(bigFile, big);
const mb = big.length / 1e6;
console.log(`event log: ${EVENTS.toLocaleString()} events (+ Spec ID header) from ${path.basename(source)}, ${mb.toFixed(1)} MB`);

const cpuNow = (): number => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
};

// In process: parse + replay of every bank the log declares (sha1, sha256, sha384), and of sha256 alone
// (what verifyEventLogAgainstQuote replays). Wall and CPU time: the machine may be shared.
function measure(banks: 'all' | 'sha256'): { wall: number; cpu: number } {
  const walls: number[] = [];
  const cpus: number[] = [];
  for (let i = 0; i < 6; i++) {
    const c0 = cpuNow();
    const t0 = performance.now();
    const log = parseEventLog(big);
    const replay = banks === 'all' ? replayEventLog(log) : replayEventLog(log, { banks: ['sha256'] });
    walls.push(performance.now() - t0);
    cpus.push(cpuNow() - c0);
    if ([...replay.values()].some((r) => !r.ok)) throw new Error('replay failed');
  }
  return { wall: median(walls.slice(1)), cpu: median(cpus.slice(1)) };
}
for (const banks of ['all', 'sha256'] as const) {
  const m = measure(banks);
  const label = banks === 'all' ? parseEventLog(big).banks.join('+') : 'sha256';
  console.log(
    `in-process parse+replay (${label}): wall ${m.wall.toFixed(0)} ms, cpu ${m.cpu.toFixed(0)} ms  →  ${Math.round(EVENTS / (m.wall / 1000)).toLocaleString()} events/s, ${(mb / (m.wall / 1000)).toFixed(0)} MB/s wall  (aim < 500 ms)`,
  );
}

// Whole process, output included: `keyhold eventlog` (YAML, and --json) and `tpm2_eventlog
// --eventlog-version=2`, each printing every event and the PCRs to /dev/null; interleaved runs,
// medians of wall and CPU (user+sys of the child process, /proc/self/stat cutime+cstime).
const RUNS = Number(process.env['KEYHOLD_BENCH_RUNS'] ?? 5);
if (!existsSync(cli)) {
  console.log(`whole-process: skipped, ${cli} is absent (pnpm exec tsc -b packages/cli)`);
} else if (spawnSync('tpm2_eventlog', ['--version']).status !== 0) {
  console.log('whole-process: tpm2_eventlog is not runnable; keyhold alone:');
  const t = timeInterleaved({ keyhold: [process.execPath, [cli, 'eventlog', bigFile]] }, RUNS);
  console.log(`keyhold eventlog: wall ${t['keyhold']!.wallMs.toFixed(0)} ms`);
} else {
  const t = timeInterleaved(
    {
      keyhold: [process.execPath, [cli, 'eventlog', bigFile]],
      tpm2: ['tpm2_eventlog', ['--eventlog-version=2', bigFile]],
      json: [process.execPath, [cli, 'eventlog', '--json', bigFile]],
    },
    RUNS,
  );
  const ours = t['keyhold']!;
  const tpm2 = t['tpm2']!;
  const json = t['json']!;
  const fmt = (x: Timing): string =>
    `wall ${x.wallMs.toFixed(0)} ms, cpu ${x.cpuMs === undefined ? '?' : x.cpuMs.toFixed(0)} ms (exit ${x.status}; walls ${x.walls.map((w) => w.toFixed(0)).join('/')}, cpus ${x.cpus.map((c) => c.toFixed(0)).join('/')})`;
  console.log(`whole process, ${RUNS} interleaved runs each, medians:`);
  console.log(`  keyhold eventlog (YAML):          ${fmt(ours)}`);
  console.log(`  keyhold eventlog --json:          ${fmt(json)}`);
  console.log(`  tpm2_eventlog --eventlog-version=2: ${fmt(tpm2)}`);
  const cpuRatio = tpm2.cpuMs !== undefined && ours.cpuMs !== undefined ? (tpm2.cpuMs / ours.cpuMs).toFixed(2) : '?';
  console.log(`ratio tpm2_eventlog / keyhold eventlog (YAML): wall ${(tpm2.wallMs / ours.wallMs).toFixed(2)}x, cpu ${cpuRatio}x  (aim >= 2x in both)`);
  Object.assign(result, { runs: RUNS, keyholdWallMs: ours.wallMs, keyholdCpuMs: ours.cpuMs, tpm2WallMs: tpm2.wallMs, tpm2CpuMs: tpm2.cpuMs, jsonWallMs: json.wallMs, wallRatio: tpm2.wallMs / ours.wallMs, cpuRatio: tpm2.cpuMs !== undefined && ours.cpuMs !== undefined ? tpm2.cpuMs / ours.cpuMs : null });
}

// IMA: 100k ima-ng entries; parse (template hash check), verify against PCR10 (sha256), appraise.
const lines = Array.from({ length: IMA_ENTRIES }, (_, i) => imaLine(i));
const text = `${lines.map((l) => l.line).join('\n')}\n`;
const policy = parseRuntimePolicy({
  meta: { version: 1 },
  digests: Object.fromEntries(lines.map((l) => [l.path, [l.digest]])),
  excludes: ['/tmp/.*', '/var/log/.*'],
  keyrings: {},
  ima: { ignored_keyrings: [], log_hash_alg: 'sha1', dm_policy: null },
  'ima-buf': {},
  'verification-keys': '',
});
const quoted = replayIma(parseImaLog(text), { bank: 'sha256' });
const imaRuns: { parse: number; verify: number; appraise: number; cpu: number }[] = [];
for (let i = 0; i < 4; i++) {
  const c0 = cpuNow();
  const t0 = performance.now();
  const entries = parseImaLog(text);
  const t1 = performance.now();
  const verified = verifyImaAgainstQuote(entries, { bank: 'sha256', value: quoted });
  const t2 = performance.now();
  const result = appraiseIma(verified.entries, policy);
  const t3 = performance.now();
  if (!result.ok || result.appraised !== IMA_ENTRIES) throw new Error('IMA appraisal failed');
  imaRuns.push({ parse: t1 - t0, verify: t2 - t1, appraise: t3 - t2, cpu: cpuNow() - c0 });
}
const pick = (k: 'parse' | 'verify' | 'appraise' | 'cpu'): number => median(imaRuns.slice(1).map((r) => r[k]));
const total = pick('parse') + pick('verify') + pick('appraise');
console.log(
  `IMA ${IMA_ENTRIES.toLocaleString()} entries (${(text.length / 1e6).toFixed(1)} MB), wall: parse+template-hash check ${pick('parse').toFixed(0)} ms, replay/verify PCR10 sha256 ${pick('verify').toFixed(0)} ms, appraise ${pick('appraise').toFixed(0)} ms; total wall ${total.toFixed(0)} ms, cpu ${pick('cpu').toFixed(0)} ms  (aim < 1000 ms)`,
);
rmSync(dir, { recursive: true, force: true });
if (process.argv.includes('--json')) console.log(`BENCH_RESULT ${JSON.stringify({ ...result, imaWallMs: total, imaCpuMs: pick('cpu') })}`);
