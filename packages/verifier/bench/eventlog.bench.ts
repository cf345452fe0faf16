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

function timeProcess(cmd: string, args: string[], runs: number): { ms: number; status: number | null } {
  const times: number[] = [];
  let status: number | null = null;
  for (let i = 0; i < runs; i++) {
    const devnull = openSync('/dev/null', 'w');
    const t0 = performance.now();
    const r = spawnSync(cmd, args, { stdio: ['ignore', devnull, 'pipe'] });
    times.push(performance.now() - t0);
    status = r.status;
  }
  return { ms: median(times), status };
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

// In process: parse + replay of every bank the log declares (sha1, sha256, sha384).
const inProc: number[] = [];
for (let i = 0; i < 6; i++) {
  const t0 = performance.now();
  const log = parseEventLog(big);
  const replay = replayEventLog(log);
  inProc.push(performance.now() - t0);
  if ([...replay.values()].some((r) => !r.ok)) throw new Error('replay failed');
}
const warm = median(inProc.slice(1));
console.log(`in-process parse+replay (${parseEventLog(big).banks.join('+')}): ${warm.toFixed(0)} ms  →  ${Math.round(EVENTS / (warm / 1000)).toLocaleString()} events/s, ${(mb / (warm / 1000)).toFixed(0)} MB/s  (aim < 500 ms)`);

// Whole process, both printing every event to /dev/null.
if (!existsSync(cli)) {
  console.log(`whole-process: skipped, ${cli} is absent (pnpm exec tsc -b packages/cli)`);
} else {
  const ours = timeProcess(process.execPath, [cli, 'eventlog', bigFile], 3);
  const ours2 = timeProcess(process.execPath, [cli, 'eventlog', '--json', bigFile], 3);
  console.log(`keyhold eventlog (text): ${ours.ms.toFixed(0)} ms (exit ${ours.status}); --json: ${ours2.ms.toFixed(0)} ms (exit ${ours2.status})`);
  const tpm2 = timeProcess('tpm2_eventlog', ['--eventlog-version=2', bigFile], 3);
  if (tpm2.status === null) console.log('tpm2_eventlog: not runnable');
  else {
    console.log(`tpm2_eventlog --eventlog-version=2: ${tpm2.ms.toFixed(0)} ms (exit ${tpm2.status})`);
    console.log(`ratio tpm2_eventlog / keyhold eventlog (text): ${(tpm2.ms / ours.ms).toFixed(2)}×  (aim ≥ 2×)`);
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
const imaRuns: { parse: number; verify: number; appraise: number }[] = [];
for (let i = 0; i < 4; i++) {
  const t0 = performance.now();
  const entries = parseImaLog(text);
  const t1 = performance.now();
  const verified = verifyImaAgainstQuote(entries, { bank: 'sha256', value: quoted });
  const t2 = performance.now();
  const result = appraiseIma(verified.entries, policy);
  const t3 = performance.now();
  if (!result.ok || result.appraised !== IMA_ENTRIES) throw new Error('IMA appraisal failed');
  imaRuns.push({ parse: t1 - t0, verify: t2 - t1, appraise: t3 - t2 });
}
const pick = (k: 'parse' | 'verify' | 'appraise'): number => median(imaRuns.slice(1).map((r) => r[k]));
const total = pick('parse') + pick('verify') + pick('appraise');
console.log(
  `IMA ${IMA_ENTRIES.toLocaleString()} entries (${(text.length / 1e6).toFixed(1)} MB): parse+template-hash ${pick('parse').toFixed(0)} ms, replay/verify PCR10 sha256 ${pick('verify').toFixed(0)} ms, appraise ${pick('appraise').toFixed(0)} ms, total ${total.toFixed(0)} ms  (aim < 1000 ms)`,
);
