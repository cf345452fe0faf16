/**
 * Start-up time of the three binaries' `--help` (the cost every invocation pays before its command
 * runs), next to a bare `node -e 0` measured in the same run. Runs the built bins (pnpm run build).
 *
 *   node --import tsx packages/command-line/bench/startup.bench.ts [--runs 20] [--compare OTHER_CHECKOUT]
 *
 * --compare runs the same commands from another built checkout (e.g. a worktree of the previous
 * commit) in the same interleaved rounds and prints the ratio new/old per command.
 */
import { spawnSync } from 'node:child_process';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const { values } = parseArgs({ options: { runs: { type: 'string', default: '20' }, compare: { type: 'string' } } });
const runs = Math.max(3, Number(values.runs));
const root = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');

const commands = (base: string, tag: string): [string, string[]][] => [
  [`keyhold --help${tag}`, [resolve(base, 'packages/cli/bin/keyhold.js'), '--help']],
  [`keyhold-agent --help${tag}`, [resolve(base, 'packages/attestation-agent/bin/keyhold-agent.js'), '--help']],
  [`keyhold-agent token --tcti bogus:x (usage error)${tag}`, [resolve(base, 'packages/attestation-agent/bin/keyhold-agent.js'), 'token', '--tcti', 'bogus:x']],
  [`keyhold-kbs --help${tag}`, [resolve(base, 'packages/kbs/bin/keyhold-kbs.js'), '--help']],
];
const cases: [string, string[]][] = [['node -e 0 (baseline)', ['-e', '0']], ...commands(root, ''), ...(values.compare !== undefined ? commands(resolve(values.compare), ' [compare]') : [])];

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] ?? NaN;
}

const samples = new Map<string, number[]>(cases.map(([n]) => [n, []]));
// Interleaved rounds, so a burst of load on the shared machine hits every case alike.
for (let i = 0; i < runs; i++) {
  for (const [name, args] of cases) {
    const t0 = process.hrtime.bigint();
    spawnSync(process.execPath, args, { stdio: 'ignore' });
    samples.get(name)?.push(Number(process.hrtime.bigint() - t0) / 1e6);
  }
}
const base = median(samples.get(cases[0]![0]) ?? []);
process.stdout.write(`start-up, median of ${runs} runs (wall clock, ms)\n`);
for (const [name] of cases) {
  const m = median(samples.get(name) ?? []);
  process.stdout.write(`${name.padEnd(60)} ${m.toFixed(1).padStart(7)} ms  (+${(m - base).toFixed(1)} ms over node, x${(m / base).toFixed(2)})\n`);
}
if (values.compare !== undefined) {
  process.stdout.write(`\nthis checkout vs ${values.compare} (time over node -e 0, new / old)\n`);
  for (const [name] of commands(root, '')) {
    const now = median(samples.get(name) ?? []) - base;
    const old = median(samples.get(`${name} [compare]`) ?? []) - base;
    process.stdout.write(`${name.padEnd(60)} +${now.toFixed(1)} ms vs +${old.toFixed(1)} ms  (x${(now / old).toFixed(2)})\n`);
  }
}
