/**
 * Nightly fuzzing (issue 12): runs every fast-check property of the `*.fuzz.test.ts` modules beside
 * the parsers (CI runs 200 cases of each through vitest) for as long as asked, one property at a
 * time, each in a worker thread with a heap limit and a watchdog, and prints cases/s per property
 * and every counterexample with the seed and path that replay it:
 *
 *   pnpm fuzz [--seconds N] [--property NAME] [--seed S] [--hang-seconds H] [--heap-mb M]
 *
 * --seconds: per property (default 10); --property: run only properties whose name contains NAME;
 * --hang-seconds: a case running longer is reported as a hang (default 10); --heap-mb: worker heap
 * limit (default 512) — a case that exceeds it is reported as unbounded memory. Replay a
 * counterexample with `fc.assert(property, { seed, path })`. Exit status 1 when any property failed.
 */
import { readdirSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { Worker } from 'node:worker_threads';
import { fileURLToPath } from 'node:url';

interface WorkerResult {
  readonly kind: 'done';
  /** Time spent fuzzing, start-up excluded. */
  readonly ms: number;
  readonly numRuns: number;
  readonly failed: boolean;
  readonly seed: number;
  readonly path: string | undefined;
  readonly counterexample: string | undefined;
  readonly error: string | undefined;
}

const repoRoot = fileURLToPath(new URL('../', import.meta.url));
const { values } = parseArgs({
  options: {
    seconds: { type: 'string', default: '10' },
    property: { type: 'string' },
    seed: { type: 'string' },
    'hang-seconds': { type: 'string', default: '10' },
    'heap-mb': { type: 'string', default: '512' },
  },
});
const seconds = Number(values.seconds);
const hangMs = Number(values['hang-seconds']) * 1000;
const heapMb = Number(values['heap-mb']);
if (!(seconds > 0) || !(hangMs > 0) || !(heapMb > 0)) throw new TypeError('--seconds, --hang-seconds and --heap-mb must be positive numbers');

/** Every `*.fuzz.test.ts` under packages/<name>/src. */
function fuzzModules(): string[] {
  const out: string[] = [];
  const walk = (dir: string): void => {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      const p = path.join(dir, e.name);
      if (e.isDirectory() && e.name !== 'node_modules' && e.name !== 'dist') walk(p);
      else if (e.isFile() && e.name.endsWith('.fuzz.test.ts')) out.push(p);
    }
  };
  for (const pkg of readdirSync(path.join(repoRoot, 'packages'))) {
    const src = path.join(repoRoot, 'packages', pkg, 'src');
    try {
      walk(src);
    } catch {
      // a package without src/
    }
  }
  return out.sort();
}

/** A worker that registers tsx (TypeScript) and runs scripts/fuzz-worker.ts. */
function startWorker(data: Record<string, unknown>, resourceLimits?: { maxOldGenerationSizeMb: number }): Worker {
  const entry = new URL('./fuzz-worker.ts', import.meta.url).href;
  const boot = `import('tsx/esm/api').then(({ register }) => { register(); return import(${JSON.stringify(entry)}); })`;
  return new Worker(boot, { eval: true, workerData: data, ...(resourceLimits ? { resourceLimits } : {}) });
}

async function listProperties(file: string): Promise<string[]> {
  const w = startWorker({ mode: 'list', file });
  const names = await new Promise<string[]>((resolve, reject) => {
    w.once('message', (m: { names: string[] }) => resolve(m.names));
    w.once('error', reject);
  });
  await w.terminate();
  return names;
}

interface Outcome {
  readonly name: string;
  readonly cases: number;
  readonly ms: number;
  readonly problem: string | undefined;
}

async function fuzz(file: string, name: string): Promise<Outcome> {
  const seed = values.seed !== undefined ? Number(values.seed) : (Date.now() ^ (Math.random() * 0x7fffffff)) | 0;
  // progress[0]: the run id of the case in flight (its replay path); progress[1]: cases started.
  const progress = new Int32Array(new SharedArrayBuffer(8));
  const started = performance.now();
  const w = startWorker({ mode: 'run', file, name, seconds, seed, progress }, { maxOldGenerationSizeMb: heapMb });
  return new Promise<Outcome>((resolve) => {
    let lastCount = -1;
    let lastChange = performance.now();
    let settled = false;
    const finish = (problem: string | undefined, cases = Atomics.load(progress, 1), ms = performance.now() - started): void => {
      if (settled) return;
      settled = true;
      clearInterval(watchdog);
      void w.terminate();
      resolve({ name, cases, ms, problem });
    };
    const where = (): string => `seed ${seed}, path "${Atomics.load(progress, 0)}"`;
    const watchdog = setInterval(() => {
      const count = Atomics.load(progress, 1);
      if (count !== lastCount) {
        lastCount = count;
        lastChange = performance.now();
      } else if (performance.now() - lastChange > hangMs) {
        // SECURITY property: no input may keep a parser busy beyond the bound.
        finish(`HANG: one case ran longer than ${hangMs / 1000} s (${where()})`);
      }
    }, 250);
    w.on('message', (r: WorkerResult) => {
      const problem = r.failed ? `COUNTEREXAMPLE (seed ${r.seed}, path "${r.path ?? ''}"): ${r.counterexample ?? ''}\n    ${r.error ?? ''}` : undefined;
      finish(problem, r.numRuns, r.ms);
    });
    w.on('error', (err: Error & { code?: string }) =>
      finish(err.code === 'ERR_WORKER_OUT_OF_MEMORY' ? `MEMORY: one case exceeded the ${heapMb} MB heap (${where()})` : `CRASH: ${err.message} (${where()})`),
    );
    w.on('exit', () => finish(settled ? undefined : `CRASH: the worker exited (${where()})`));
  });
}

const files = fuzzModules();
const plan: [string, string][] = [];
for (const f of files) for (const n of await listProperties(f)) if (values.property === undefined || n.includes(values.property)) plan.push([f, n]);
if (plan.length === 0) {
  console.log(`no fuzz property matches ${values.property ?? ''} (modules: ${files.length})`);
  process.exit(1);
}
console.log(`fuzzing ${plan.length} properties from ${files.length} modules, ${seconds} s each (hang bound ${hangMs / 1000} s, heap ${heapMb} MB)`);
let failures = 0;
for (const [file, name] of plan) {
  const o = await fuzz(file, name);
  const rate = o.cases / (o.ms / 1000);
  console.log(`${o.problem === undefined ? 'ok  ' : 'FAIL'} ${name.padEnd(96)} ${String(o.cases).padStart(8)} cases ${rate.toFixed(0).padStart(7)} cases/s`);
  if (o.problem !== undefined) {
    failures++;
    console.log(`    ${o.problem}  (${path.relative(repoRoot, file)})`);
  }
}
console.log(failures === 0 ? 'no counterexample found' : `${failures} propert${failures === 1 ? 'y' : 'ies'} failed`);
process.exitCode = failures === 0 ? 0 : 1;
