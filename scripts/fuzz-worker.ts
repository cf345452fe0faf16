/**
 * One worker of scripts/fuzz.ts: lists a fuzz module's properties, or runs one for a given time.
 * Before each case it publishes the case's run id (its replay path) and a case count in shared
 * memory, so the parent can name the case a hang or an out-of-memory stopped.
 */
import { pathToFileURL } from 'node:url';
import { parentPort, workerData } from 'node:worker_threads';
import fc from 'fast-check';

type FuzzProperty = { readonly name: string; readonly property: fc.IRawProperty<unknown[], boolean> };
const data = workerData as { mode: 'list' | 'run'; file: string; name?: string; seconds?: number; seed?: number; progress?: Int32Array };
/** `cleanup`: optional, for modules that start something (the KBS HTTP edge: a temp dir, the state). */
const mod = (await import(pathToFileURL(data.file).href)) as { properties: readonly FuzzProperty[]; cleanup?: () => Promise<void> };

if (data.mode === 'list') {
  parentPort?.postMessage({ names: mod.properties.map((p) => p.name) });
} else {
  const found = mod.properties.find((p) => p.name === data.name);
  if (found === undefined) throw new Error(`no property ${data.name ?? ''} in ${data.file}`);
  const progress = data.progress as Int32Array;
  // fast-check calls generate(random, runId) once per case; runId is the path that replays it.
  const tracked = new Proxy(found.property, {
    get(target, key) {
      const v = Reflect.get(target, key) as unknown;
      if (key === 'generate') {
        return (mrng: unknown, runId?: number) => {
          Atomics.store(progress, 0, runId ?? 0);
          Atomics.add(progress, 1, 1);
          return (v as (m: unknown, r?: number) => unknown).call(target, mrng, runId);
        };
      }
      return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
    },
  });
  const t0 = performance.now();
  const details = await fc.check(tracked, {
    seed: data.seed,
    numRuns: 2 ** 31 - 1,
    interruptAfterTimeLimit: (data.seconds ?? 10) * 1000,
    markInterruptAsFailure: false,
  });
  await mod.cleanup?.();
  parentPort?.postMessage({
    kind: 'done',
    ms: performance.now() - t0,
    numRuns: details.numRuns,
    failed: details.failed,
    seed: details.seed,
    path: details.counterexamplePath ?? undefined,
    counterexample: details.counterexample === null ? undefined : fc.stringify(details.counterexample).slice(0, 400),
    error: details.errorInstance === null ? undefined : String((details.errorInstance as Error).stack ?? details.errorInstance).split('\n').slice(0, 4).join('\n    '),
  });
}
