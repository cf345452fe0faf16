/**
 * KMS adapter benchmark: get latency (p50/p99) and put throughput per backend, side by side.
 * Run: pnpm --filter @keyhold/kms-adapter bench
 *   (= node --conditions keyhold-source --import tsx bench/kms.bench.ts [--ops N])
 * Starts its own redis-server processes (standalone and a 3-master cluster) on loopback.
 */
import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startRedis, startRedisCluster } from '@keyhold/test-harness';
import { createEmbeddedStore, createRedisStore, isKmsError, type SecretStore } from '../src/index.js';
import { RACY_WINDOW_MS } from '../src/embedded/read-cache.js';

const opsArg = process.argv.indexOf('--ops');
const OPS = opsArg > 0 ? Number(process.argv[opsArg + 1]) : 2000;
const CONCURRENCY = 16;
const VALUE = randomBytes(1024);

interface Row {
  backend: string;
  getP50: number;
  getP99: number;
  getsPerSec: number;
  putsPerSecSeq: number;
  putsPerSecConc: number;
}

function pct(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? Number.NaN;
}

async function measure(backend: string, store: SecretStore): Promise<Row> {
  const names = Array.from({ length: 64 }, (_, i) => `bench/${backend.replace(/\W/g, '-')}/k${i}`);
  // Sequential puts (each a new version; keep 5).
  let t0 = performance.now();
  for (let i = 0; i < OPS; i++) await store.put(names[i % names.length] as string, VALUE, { keepVersions: 5 });
  const putsPerSecSeq = OPS / ((performance.now() - t0) / 1000);
  // Concurrent puts to different names.
  t0 = performance.now();
  let next = 0;
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (next < OPS) {
        const i = next++;
        await store.put(names[i % names.length] as string, VALUE, { keepVersions: 5 });
      }
    }),
  );
  const putsPerSecConc = OPS / ((performance.now() - t0) / 1000);
  // Sequential gets of the latest version: latency distribution.
  const lat: number[] = [];
  for (let i = 0; i < OPS; i++) {
    const s = performance.now();
    await store.get(names[i % names.length] as string);
    lat.push(performance.now() - s);
  }
  lat.sort((a, b) => a - b);
  // Concurrent gets: throughput.
  t0 = performance.now();
  next = 0;
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (next < OPS) {
        const i = next++;
        await store.get(names[i % names.length] as string);
      }
    }),
  );
  const getsPerSec = OPS / ((performance.now() - t0) / 1000);
  for (const n of names) await store.delete(n);
  return { backend, getP50: pct(lat, 50), getP99: pct(lat, 99), getsPerSec, putsPerSecSeq, putsPerSecConc };
}

/**
 * Embedded get latency with and without the read cache, same store, same run: right after the
 * writes every directory is inside the racy window (listed and read every time); once the window
 * has passed, a get is one stat plus the decryption.
 */
async function embeddedCache(dir: string): Promise<{ uncachedUs: number; cachedUs: number }> {
  const store = await createEmbeddedStore({ backend: 'embedded', dir });
  const names = Array.from({ length: 64 }, (_, i) => `bench/cache/k${i}`);
  for (const n of names) await store.put(n, VALUE);
  const p50 = async (): Promise<number> => {
    const lat: number[] = [];
    for (let i = 0; i < OPS; i++) {
      const s = performance.now();
      await store.get(names[i % names.length] as string);
      lat.push(performance.now() - s);
    }
    return pct(lat.sort((a, b) => a - b), 50) * 1000;
  };
  const uncachedUs = await p50();
  await new Promise((r) => setTimeout(r, RACY_WINDOW_MS + 100));
  const cachedUs = await p50();
  await store.close();
  return { uncachedUs, cachedUs };
}

const tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'kh-kms-bench-'));
const masterKeyFile = path.join(tmp, 'master.key');
const redis = await startRedis();
const cluster = await startRedisCluster({ masters: 3 });
const rows: Row[] = [];
try {
  const stores: Array<[string, () => Promise<SecretStore>]> = [
    ['embedded', () => createEmbeddedStore({ backend: 'embedded', dir: path.join(tmp, 'embedded') })],
    ['redis', () => createRedisStore({ backend: 'redis', url: redis.url, masterKeyFile })],
    ['redis-cluster', () => createRedisStore({ backend: 'redis', cluster: { nodes: cluster.nodes.map((n) => ({ host: n.host, port: n.port })) }, masterKeyFile })],
  ];
  for (const [name, make] of stores) {
    const store = await make();
    rows.push(await measure(name, store));
    await store.close();
  }

  // Fault behaviour: time from SIGKILL to the first KMS_UNAVAILABLE, and from restart to success.
  const store = await createRedisStore({ backend: 'redis', url: redis.url, masterKeyFile });
  await store.put('bench/fault/x', VALUE);
  await redis.kill();
  let t0 = performance.now();
  let failMs = Number.NaN;
  try {
    await store.get('bench/fault/x');
  } catch (err) {
    if (isKmsError(err, 'KMS_UNAVAILABLE')) failMs = performance.now() - t0;
  }
  const worst: number[] = [];
  for (let i = 0; i < 5; i++) {
    const s = performance.now();
    await store.get('bench/fault/x').catch(() => undefined);
    worst.push(performance.now() - s);
  }
  await redis.restart();
  t0 = performance.now();
  for (;;) {
    try {
      await store.put('bench/fault/x', VALUE);
      break;
    } catch {
      await new Promise((r) => setTimeout(r, 10));
    }
  }
  const recoverMs = performance.now() - t0;
  await store.close();

  const base = rows[0] as Row;
  const f = (n: number, d = 0): string => n.toFixed(d);
  console.log(`\nKMS adapter benchmark — ${OPS} ops per phase, 1 KiB values, concurrency ${CONCURRENCY}, ${os.cpus().length} CPUs, node ${process.version}`);
  console.log(['backend'.padEnd(14), 'get p50 ms', 'get p99 ms', 'gets/s (c16)', 'puts/s (seq)', 'puts/s (c16)', 'puts/s vs embedded'].join(' | '));
  for (const r of rows) {
    console.log(
      [
        r.backend.padEnd(14),
        f(r.getP50, 3).padStart(10),
        f(r.getP99, 3).padStart(10),
        f(r.getsPerSec).padStart(12),
        f(r.putsPerSecSeq).padStart(12),
        f(r.putsPerSecConc).padStart(12),
        `${f(r.putsPerSecConc / base.putsPerSecConc, 2)}x`.padStart(18),
      ].join(' | '),
    );
  }
  const cache = await embeddedCache(path.join(tmp, 'embedded-cache'));
  console.log(`\nembedded get p50: ${f(cache.uncachedUs, 1)} µs listed and read each time (fresh directories) vs ${f(cache.cachedUs, 1)} µs from the read cache (one stat + decrypt): ${f(cache.uncachedUs / cache.cachedUs, 2)}x`);
  console.log(`\nredis SIGKILL: first get failed with KMS_UNAVAILABLE after ${f(failMs)} ms; next 5 gets took ${worst.map((w) => f(w)).join(', ')} ms`);
  console.log(`redis restart on the same port: same store object writing again after ${f(recoverMs)} ms`);
} finally {
  await redis.stop();
  await cluster.stop();
  await fs.rm(tmp, { recursive: true, force: true });
}
