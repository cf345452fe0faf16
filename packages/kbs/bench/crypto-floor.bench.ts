/**
 * Micro-benchmark of the KBS's per-flow crypto: the node:crypto floor, the old jose path and the new
 * hot-path modules, per operation, in the same run. Prints µs per op (wall and process CPU, all
 * threads) and the ratios new/floor and jose/new. Asserts nothing.
 *
 *   node --import tsx packages/kbs/bench/crypto-floor.bench.ts [--iterations 2000] [--rounds 5]
 *
 * Rounds interleave the three variants so that load from other processes hits them alike; each
 * figure is the median round.
 */
import { parseArgs } from 'node:util';
import { EXTRA_OPS, FLOOR_OPS, floorOps, joseOps, makeFlowFixture, medianCost, newOps, type Op, type OpCost, type Variant } from './crypto-floor.js';

const { values } = parseArgs({ options: { iterations: { type: 'string', default: '2000' }, rounds: { type: 'string', default: '5' } } });
const N = Number(values.iterations);
const ROUNDS = Number(values.rounds);

async function main(): Promise<void> {
  const f = makeFlowFixture();
  const impls: Record<Variant, Record<Op, () => unknown>> = { floor: floorOps(f), jose: joseOps(f), new: newOps(f) };
  const ops: Op[] = [...FLOOR_OPS, ...EXTRA_OPS];
  const results = {} as Record<Op, Record<Variant, OpCost>>;
  for (const op of ops) {
    results[op] = {} as Record<Variant, OpCost>;
    // One variant per round in turn (floor, jose, new, floor, …), median per variant.
    const runs: Record<Variant, OpCost[]> = { floor: [], jose: [], new: [] };
    for (let r = 0; r < ROUNDS; r++) {
      for (const v of ['floor', 'jose', 'new'] as const) runs[v].push(await medianCost(impls[v][op], N, 1));
    }
    for (const v of ['floor', 'jose', 'new'] as const) {
      const sorted = runs[v].sort((a, b) => a.wallUs - b.wallUs);
      results[op][v] = sorted[Math.floor(sorted.length / 2)]!;
    }
  }
  // jose's JWE row includes its own import (wrapSecret paid both); show the encryption alone too.
  const line = (label: string, c: Record<Variant, OpCost>) =>
    `${label.padEnd(26)} ${fmt(c.floor.wallUs)} ${fmt(c.floor.cpuUs)} │ ${fmt(c.jose.wallUs)} ${fmt(c.jose.cpuUs)} │ ${fmt(c.new.wallUs)} ${fmt(c.new.cpuUs)} │ ${ratio(c.new.cpuUs, c.floor.cpuUs)} ${ratio(c.jose.cpuUs, c.new.cpuUs)}`;
  console.log(`KBS per-flow crypto, µs per operation (median of ${ROUNDS} rounds × ${N}); CPU = process CPU, all threads`);
  console.log(`${'operation'.padEnd(26)} ${'floor wall'.padStart(10)} ${'cpu'.padStart(10)} │ ${'jose wall'.padStart(10)} ${'cpu'.padStart(10)} │ ${'new wall'.padStart(10)} ${'cpu'.padStart(10)} │ ${'new/floor'.padStart(9)} ${'jose/new'.padStart(9)}`);
  const sum = (list: readonly Op[]) => {
    const acc = { floor: { wallUs: 0, cpuUs: 0 }, jose: { wallUs: 0, cpuUs: 0 }, new: { wallUs: 0, cpuUs: 0 } } as Record<Variant, OpCost>;
    for (const op of list) for (const v of ['floor', 'jose', 'new'] as const) {
      acc[v].wallUs += results[op][v].wallUs;
      acc[v].cpuUs += results[op][v].cpuUs;
    }
    return acc;
  };
  for (const op of FLOOR_OPS) console.log(line(op === 'jwe-ecdh-es' ? 'jwe-ecdh-es (+import)' : op, results[op]));
  // The flow pays the import once (inside the JWE step), so the flow total counts the import row
  // only for the floor, where the JWE floor does not include it.
  const flow = sum(['quote-verify', 'es256-sign', 'jwe-ecdh-es']);
  flow.floor.wallUs += results['tee-key-import'].floor.wallUs;
  flow.floor.cpuUs += results['tee-key-import'].floor.cpuUs;
  console.log(line('= one flow (issue floor)', flow));
  for (const op of EXTRA_OPS) console.log(line(op === 'jwe-rsa-oaep' ? 'jwe-rsa-oaep-3072 (+imp.)' : op, results[op]));
  const withBearer = sum(['quote-verify', 'es256-sign', 'jwe-ecdh-es', 'bearer-verify']);
  withBearer.floor.wallUs += results['tee-key-import'].floor.wallUs;
  withBearer.floor.cpuUs += results['tee-key-import'].floor.cpuUs;
  console.log(line('= flow + bearer verify', withBearer));
  console.log(`floor per flow: ${flow.floor.cpuUs.toFixed(1)} µs CPU; new modules ${ratio(flow.new.cpuUs, flow.floor.cpuUs).trim()} of the floor; jose path ${ratio(flow.jose.cpuUs, flow.floor.cpuUs).trim()} of the floor`);
}

const fmt = (n: number): string => n.toFixed(1).padStart(10);
const ratio = (a: number, b: number): string => `${(a / b).toFixed(2)}×`.padStart(9);

await main();
