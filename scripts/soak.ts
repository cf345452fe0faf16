/**
 * The bounded soak (issue 12): honest and hostile simulated agents (software TPMs, as in the flow
 * bench) mixed with admin writes, for N minutes, against a `keyhold-kbs serve` process over HTTPS:
 *
 *   pnpm soak [--minutes N] [--honest H] [--hostile M] [--admin-every-ms MS] [--sample-seconds S]
 *
 * Prints flows, refusals by type, 5xx answers (must be 0: no faults are injected), accepted attacks
 * and honest failures (both must be 0), RSS samples over time with the least-squares slope (overall
 * and after the first third, once sessions reached their steady state), and verifies the audit chain
 * the KBS wrote (`keyhold audit --file ... --verify`). Exit 1 when any of these fails, or when RSS keeps
 * growing by more than --max-slope MiB/min after warm-up. Build first (`pnpm run build`).
 */
import { parseArgs } from 'node:util';
import { rssSlopeMiBPerMin, runSoak } from '../e2e/soak/run-soak.js';

const { values } = parseArgs({
  options: {
    minutes: { type: 'string', default: '5' },
    honest: { type: 'string', default: '6' },
    hostile: { type: 'string', default: '3' },
    'admin-every-ms': { type: 'string', default: '100' },
    'sample-seconds': { type: 'string', default: '10' },
    'max-slope': { type: 'string', default: '3' },
  },
});
const num = (k: keyof typeof values): number => {
  const v = Number(values[k]);
  if (!(v > 0)) throw new TypeError(`--${k} must be a positive number`);
  return v;
};
const minutes = num('minutes');
const maxSlope = num('max-slope');

console.log(`soak: ${minutes} min, ${values.honest} honest + ${values.hostile} hostile agents, an admin writer every ${values['admin-every-ms']} ms, KBS over HTTPS (embedded state, audit on)`);
const r = await runSoak({
  minutes,
  honest: num('honest'),
  hostile: num('hostile'),
  adminEveryMs: num('admin-every-ms'),
  sampleSeconds: num('sample-seconds'),
  onSample: (line) => console.log(`  ${line}`),
});

const s = r.stats;
const sum = (m: Map<string, number>): number => [...m.values()].reduce((a, b) => a + b, 0);
const sorted = [...s.flowMs].sort((a, b) => a - b);
const pct = (p: number): string => (sorted.length === 0 ? '-' : sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!.toFixed(1));
const slopeAll = rssSlopeMiBPerMin(r.rss);
const slopeWarm = rssSlopeMiBPerMin(r.rss, r.seconds / 3);
const first = r.rss[0]?.rssMiB ?? 0;
const last = r.rss[r.rss.length - 1]?.rssMiB ?? 0;

console.log('');
console.log(`duration          ${r.seconds.toFixed(0)} s`);
console.log(`honest flows      ${s.flows} (${(s.flows / r.seconds).toFixed(1)}/s; auth→attest→resource wall ms p50 ${pct(50)} p95 ${pct(95)} p99 ${pct(99)})`);
console.log(`honest failures   ${s.honestFailures.length}${s.honestFailures.length > 0 ? `  e.g. ${s.honestFailures.slice(0, 3).join(' | ')}` : ''}`);
console.log(`attacks           ${s.attacks}; accepted: ${sum(s.hostileAccepted)}${s.hostileAccepted.size > 0 ? ` ${JSON.stringify(Object.fromEntries(s.hostileAccepted))}` : ''}`);
console.log(`admin ops         ${s.adminWrites}; unexpected answers: ${s.adminFailures.length}${s.adminFailures.length > 0 ? `  e.g. ${s.adminFailures.slice(0, 3).join(' | ')}` : ''}`);
console.log(`refusals by type  (${sum(s.refusals)})`);
for (const [k, v] of [...s.refusals.entries()].sort((a, b) => b[1] - a[1])) console.log(`  ${String(v).padStart(7)}  ${k}`);
console.log(`5xx answers       ${sum(s.serverErrors)}${s.serverErrors.size > 0 ? ` ${JSON.stringify(Object.fromEntries(s.serverErrors))}` : ''}`);
console.log(`KBS RSS MiB       first ${first.toFixed(1)}, last ${last.toFixed(1)}, peak ${r.peakMiB.toFixed(1)}; slope ${slopeAll.toFixed(2)} MiB/min overall, ${slopeWarm.toFixed(2)} MiB/min after the first third (limit ${maxSlope})`);
console.log(`RSS samples       ${r.rss.map((x) => `${x.t.toFixed(0)}s:${x.rssMiB.toFixed(0)}`).join(' ')}`);
console.log(`audit chain       ${r.audit.ok ? 'verified' : 'FAILED'}: ${r.audit.line}`);

const failures = [
  ...(s.honestFailures.length > 0 ? ['honest failures'] : []),
  ...(sum(s.hostileAccepted) > 0 ? ['accepted attacks'] : []),
  ...(sum(s.serverErrors) > 0 ? ['5xx answers'] : []),
  ...(s.adminFailures.length > 0 ? ['unexpected admin answers'] : []),
  ...(!r.audit.ok ? ['audit chain'] : []),
  ...(r.kbsExitedEarly ? ['the KBS exited during the soak'] : []),
  ...(slopeWarm > maxSlope ? [`RSS still growing (${slopeWarm.toFixed(2)} MiB/min)`] : []),
  ...(s.flows === 0 ? ['no honest flow completed'] : []),
];
console.log(failures.length === 0 ? 'soak: PASS' : `soak: FAIL (${failures.join(', ')})`);
process.exitCode = failures.length === 0 ? 0 : 1;
