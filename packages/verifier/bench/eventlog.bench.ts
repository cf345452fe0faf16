/**
 * Event log and IMA benchmark (issue 4). Run from the repo root after building the CLI:
 *   pnpm exec tsc -b packages/cli && node --import tsx packages/verifier/bench/eventlog.bench.ts
 * Prints figures; asserts nothing. Baseline: tpm2_eventlog on the same file in the same run.
 */
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { appraiseIma, parseEventLog, parseImaLog, parseRuntimePolicy, replayEventLog, verifyImaAgainstQuote, replayIma } from '../src/index.js';

const EVENTS = 100_000;
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

const TIME = '/usr/bin/time';

/** Median wall time of `runs` runs, stdout to /dev/null; also CPU (user+sys) when /usr/bin/time exists. */
function timeProcess(cmd: string, args: string[], runs: number): { ms: number; cpuMs: number | undefined; status: number | null } {
  const times: number[] = [];
  const cpus: number[] = [];
  let status: number | null = null;
  for (let i = 0; i < runs; i++) {
    const devnull = openSync('/dev/null', 'w');
    const withTime = existsSync(TIME);
    const t0 = performance.now();
    const r = withTime
      ? spawnSync(TIME, ['-f', 'KEYHOLD_CPU %U %S', cmd, ...args], { stdio: ['ignore', devnull, 'pipe'] })
      : spawnSync(cmd, args, { stdio: ['ignore', devnull, 'pipe'] });
    times.push(performance.now() - t0);
    status = r.status;
    const m = /KEYHOLD_CPU ([\d.]+) ([\d.]+)/.exec(r.stderr.toString('utf8'));
    if (m) cpus.push((Number(m[1]) + Number(m[2])) * 1000);
  }
  return { ms: median(times), cpuMs: cpus.length > 0 ? median(cpus) : undefined, status };
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

// Whole process, both printing every event to /dev/null.
if (!existsSync(cli)) {
  console.log(`whole-process: skipped, ${cli} is absent (pnpm exec tsc -b packages/cli)`);
} else {
  const ours = timeProcess(process.execPath, [cli, 'eventlog', bigFile], 3);
  const oursJson = timeProcess(process.execPath, [cli, 'eventlog', '--json', bigFile], 3);
  const tpm2 = timeProcess('tpm2_eventlog', ['--eventlog-version=2', bigFile], 3);
  const cpu = (t: { cpuMs: number | undefined }): string => (t.cpuMs === undefined ? '' : `, cpu ${t.cpuMs.toFixed(0)} ms`);
  console.log(`keyhold eventlog (text): wall ${ours.ms.toFixed(0)} ms${cpu(ours)} (exit ${ours.status}); --json: wall ${oursJson.ms.toFixed(0)} ms${cpu(oursJson)}`);
  if (tpm2.status === null) console.log('tpm2_eventlog: not runnable');
  else {
    console.log(`tpm2_eventlog --eventlog-version=2: wall ${tpm2.ms.toFixed(0)} ms${cpu(tpm2)} (exit ${tpm2.status})`);
    const cpuRatio = tpm2.cpuMs !== undefined && ours.cpuMs !== undefined ? `, cpu ${(tpm2.cpuMs / ours.cpuMs).toFixed(2)}×` : '';
    console.log(`ratio tpm2_eventlog / keyhold eventlog (text): wall ${(tpm2.ms / ours.ms).toFixed(2)}×${cpuRatio}  (aim ≥ 2×)`);
  }
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
