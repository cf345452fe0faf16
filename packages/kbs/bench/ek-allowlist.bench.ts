// EK allowlist lookup cost at 1k vs 100k entries (issue 3: "lookup cost stays flat").
// Run: node --import tsx packages/kbs/bench/ek-allowlist.bench.ts
// Entries are written straight into the bucketed layout (<dir>/<ab>/<hash>) for speed; lookups go
// through the embedded state's EK allowlist (`state.ekAllowlist.has()`, as the KBS calls it). Half
// the lookups hit, half miss.
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { openEmbeddedState } from '../src/state/index.js';
import type { EkAllowlistState, KbsState } from '../src/state/ports.js';

const hash = (prefix: string, i: number): string => createHash('sha256').update(`${prefix}-${i}`).digest('hex');

function populate(dir: string, n: number): string[] {
  const made = new Set<string>();
  const out: string[] = [];
  for (let i = 0; i < n; i++) {
    const h = hash('ek', i);
    const bucket = h.slice(0, 2);
    if (!made.has(bucket)) {
      mkdirSync(path.join(dir, bucket), { recursive: true });
      made.add(bucket);
    }
    writeFileSync(path.join(dir, bucket, h), '');
    out.push(h);
  }
  return out;
}

interface Sized {
  n: number;
  dir: string;
  present: string[];
  state: KbsState;
  list: EkAllowlistState;
  setupMs: number;
  hit: number[];
  miss: number[];
}

async function setup(n: number): Promise<Sized> {
  const dir = mkdtempSync(path.join(tmpdir(), `keyhold-allow-bench-${n}-`));
  const t0 = performance.now();
  const allow = path.join(dir, 'ek-allowlist');
  mkdirSync(allow);
  const present = populate(allow, n);
  const state = await openEmbeddedState({ dataDir: path.join(dir, 'data'), ekAllowlistDir: allow, sessionLimits: { maxSessions: 10, maxSessionBytes: 1 << 20 }, auditFile: null });
  return { n, dir, present, state, list: state.ekAllowlist, setupMs: performance.now() - t0, hit: [], miss: [] };
}

/** One round: `k` hits then `k` misses; records microseconds per lookup. */
async function round(s: Sized, k: number, salt: number): Promise<void> {
  let t = performance.now();
  for (let i = 0; i < k; i++) {
    if (!(await s.list.has(s.present[(i * 7919 + salt) % s.present.length] as string))) throw new Error('expected hit');
  }
  s.hit.push(((performance.now() - t) * 1000) / k);
  t = performance.now();
  for (let i = 0; i < k; i++) {
    if (await s.list.has(hash(`absent-${salt}`, i))) throw new Error('expected miss');
  }
  s.miss.push(((performance.now() - t) * 1000) / k);
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] as number;
};

// The machine is shared, so both sizes are measured in alternating rounds (same load for
// both) and the median round is reported.
const ROUNDS = 15;
const PER_ROUND = 2_000;
const small = await setup(1_000);
const large = await setup(100_000);
try {
  for (const s of [small, large]) await round(s, PER_ROUND, 0); // warm-up
  small.hit.length = small.miss.length = large.hit.length = large.miss.length = 0;
  for (let r = 1; r <= ROUNDS; r++) {
    await round(small, PER_ROUND, r);
    await round(large, PER_ROUND, r);
  }
  for (const s of [small, large]) {
    console.log(`entries=${String(s.n).padStart(6)}  hit=${median(s.hit).toFixed(2)} us/lookup  miss=${median(s.miss).toFixed(2)} us/lookup  (median of ${ROUNDS} rounds x ${PER_ROUND}; populate ${s.setupMs.toFixed(0)} ms)`);
  }
  console.log(`ratio 100k/1k: hit x${(median(large.hit) / median(small.hit)).toFixed(2)}  miss x${(median(large.miss) / median(small.miss)).toFixed(2)}`);
} finally {
  await small.state.close();
  await large.state.close();
  rmSync(small.dir, { recursive: true, force: true });
  rmSync(large.dir, { recursive: true, force: true });
}
