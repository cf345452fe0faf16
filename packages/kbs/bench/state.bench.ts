/**
 * Benchmark: the cost of the state port's hot operations on each backend, in process. Baseline:
 * the embedded state (memory + data dir) measured in the same run; then Redis standalone (a real
 * redis-server started here; `--aof` turns on appendonly with appendfsync always). For each
 * operation it prints ops/s with 32 operations in flight, this process's CPU per operation and,
 * for Redis, the redis-server's CPU per operation, and the ratio to embedded. First, in the fresh
 * process, the memory held by pending sessions (embedded: RSS and heap per session after GC, with a
 * TPM-sized challenge).
 *
 *   node --expose-gc --conditions keyhold-source --import tsx packages/kbs/bench/state.bench.ts [--seconds 2] [--sessions 100000] [--aof]
 */
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { startRedis, type RedisServer } from '@keyhold/test-harness';
import { openEmbeddedState, openRedisState, updateNode, type KbsState, type NewSession } from '../src/state/index.js';

const { values } = parseArgs({
  options: { seconds: { type: 'string', default: '2' }, sessions: { type: 'string', default: '100000' }, aof: { type: 'boolean', default: false } },
});
const SECONDS = Number(values.seconds);
const SESSIONS = Number(values.sessions);
const INFLIGHT = 32;
const LIMITS = { maxSessions: 1_000_000, maxSessionBytes: 2 * 1024 * 1024 * 1024 };

/** A challenge the size of the TPM identity extension's state (~750 characters of JSON). */
function challenge(): Record<string, unknown> {
  const h = (): string => randomBytes(32).toString('hex');
  return {
    'tpm-identity': {
      wireSha256: { ek_tpm2b_public: h(), ak_tpm2b_public: h(), ek_cert: h() },
      ekHash: h(),
      akSpkiSha256: h(),
      akNameHex: `000b${h()}`,
      mode: 'activate',
      via: 'ca',
      certificate: { subject: 'CN=swtpm-localca, O=keyhold bench', issuer: 'CN=swtpm-localca-rootca' },
      expectedHex: h(),
    },
  };
}

function session(withChallenge: boolean): NewSession {
  return {
    id: randomBytes(16).toString('hex'),
    tee: 'tpm',
    nonce: randomBytes(32).toString('base64'),
    hashAlgorithm: 'sha384',
    expiresAtMs: Date.now() + 600_000,
    ...(withChallenge ? { challenge: challenge() } : {}),
  };
}

/** CPU seconds of a process so far (Linux /proc), or undefined. */
function procCpuSec(pid: number | undefined): number | undefined {
  if (pid === undefined) return undefined;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(f[11]) + Number(f[12])) / 100;
  } catch {
    return undefined;
  }
}

interface Figure {
  readonly opsPerSec: number;
  readonly cpuUsPerOp: number;
  readonly serverCpuUsPerOp: number | undefined;
}

/** Run `op(i)` with INFLIGHT in flight for SECONDS (or until `limit` ops). */
async function measure(op: (i: number) => Promise<unknown>, serverPid: number | undefined, limit = Number.POSITIVE_INFINITY): Promise<Figure> {
  let next = 0;
  const end = performance.now() + SECONDS * 1000;
  const cpu0 = process.cpuUsage();
  const srv0 = procCpuSec(serverPid);
  const t0 = performance.now();
  const worker = async (): Promise<void> => {
    while (performance.now() < end && next < limit) await op(next++);
  };
  await Promise.all(Array.from({ length: INFLIGHT }, worker));
  const elapsed = (performance.now() - t0) / 1000;
  const cpu = process.cpuUsage(cpu0);
  const srv1 = procCpuSec(serverPid);
  return {
    opsPerSec: next / elapsed,
    cpuUsPerOp: (cpu.user + cpu.system) / next,
    serverCpuUsPerOp: srv0 === undefined || srv1 === undefined ? undefined : ((srv1 - srv0) * 1e6) / next,
  };
}

async function benchBackend(state: KbsState, serverPid: number | undefined): Promise<Record<string, Figure>> {
  const out: Record<string, Figure> = {};
  // Sessions: create (with a TPM-sized challenge; made beforehand), then consume each nonce once.
  const fresh = Array.from({ length: 40_000 }, () => session(true));
  const made: string[] = [];
  out['session create'] = await measure(async (i) => {
    const s = fresh[i]!;
    await state.sessions.create(s);
    made.push(s.id);
  }, serverPid, fresh.length);
  out['consumeNonce'] = await measure((i) => state.sessions.consumeNonce(made[i]!), serverPid, made.length);
  for (const id of made) await state.sessions.delete(id);
  // Node read-modify-write (get + compare-and-swap) over 256 nodes.
  const nodes = Array.from({ length: 256 }, () => randomBytes(32).toString('hex'));
  for (const id of nodes) await state.nodes.compareAndSwap(id, 0, { nodeId: id, ekHash: id, akName: `000b${randomBytes(32).toString('hex')}`, firstSeenAt: new Date().toISOString(), state: 'active' });
  out['node CAS (updateNode)'] = await measure(
    (i) =>
      updateNode(state.nodes, nodes[i % nodes.length]!, (prev) => {
        const { version: _v, ...rest } = prev!;
        return { ...rest, lastSeenAt: new Date().toISOString(), lastVerdict: { status: 'affirming', policy: 'default@1', at: new Date().toISOString() } };
      }),
    serverPid,
  );
  // Reference snapshot: 40 names as a measured-boot setup has; one version check per call.
  await state.referenceValues.set(Object.fromEntries(Array.from({ length: 40 }, (_, i) => [`tpm_pcr${i}`, [randomBytes(32).toString('hex')]])));
  out['reference snapshot'] = await measure(() => state.referenceValues.snapshot(), serverPid);
  out['rate limit take'] = await measure((i) => state.rateLimits.take(`auth:10.0.${(i >> 8) & 255}.${i & 255}`, { ratePerSec: 1000, burst: 1000 }), serverPid);
  return out;
}

function row(name: string, f: Figure, base?: Figure): string {
  const ratio = base === undefined ? '' : `  ${(f.opsPerSec / base.opsPerSec).toFixed(2)}x ops/s, ${(f.cpuUsPerOp / base.cpuUsPerOp).toFixed(2)}x CPU`;
  const srv = f.serverCpuUsPerOp === undefined ? '' : `  redis ${f.serverCpuUsPerOp.toFixed(1)} µs/op`;
  return `  ${name.padEnd(24)} ${f.opsPerSec.toFixed(0).padStart(9)} ops/s  ${f.cpuUsPerOp.toFixed(1).padStart(7)} µs CPU/op${srv}${ratio}`;
}

async function sessionMemory(): Promise<void> {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (gc === undefined) {
    console.log('session memory: run node with --expose-gc to measure');
    return;
  }
  const dir = await mkdtemp(join(tmpdir(), 'kh-state-bench-mem-'));
  const state = await openEmbeddedState({ dataDir: dir, sessionLimits: LIMITS, auditFile: null });
  try {
    gc();
    const before = process.memoryUsage();
    for (let i = 0; i < SESSIONS; i++) await state.sessions.create(session(true));
    gc();
    const after = process.memoryUsage();
    const stats = await state.sessions.stats();
    console.log(
      `session memory (embedded, ${stats.count} pending sessions with a TPM-sized challenge): RSS +${((after.rss - before.rss) / 2 ** 20).toFixed(1)} MiB ` +
        `(${((after.rss - before.rss) / SESSIONS).toFixed(0)} B/session), heap +${((after.heapUsed - before.heapUsed) / SESSIONS).toFixed(0)} B/session; ` +
        `counted against max_session_bytes: ${(stats.bytes / SESSIONS).toFixed(0)} B/session; process RSS now ${(after.rss / 2 ** 20).toFixed(0)} MiB`,
    );
  } finally {
    await state.close();
    await rm(dir, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  // First, while the heap is small: RSS growth is only meaningful in a fresh process.
  await sessionMemory();
  const dir = await mkdtemp(join(tmpdir(), 'kh-state-bench-'));
  let redis: RedisServer | undefined;
  try {
    const embedded = await openEmbeddedState({ dataDir: join(dir, 'embedded'), sessionLimits: LIMITS, auditFile: null });
    const base = await benchBackend(embedded, undefined);
    await embedded.close();
    console.log(`state bench: ${INFLIGHT} in flight, ${SECONDS} s per operation`);
    console.log('embedded (baseline)');
    for (const [k, f] of Object.entries(base)) console.log(row(k, f));

    redis = await startRedis(values.aof ? { args: ['--appendonly', 'yes', '--appendfsync', 'always'] } : {});
    const shared = await openRedisState({ url: redis.url, keyPrefix: 'bench', sessionLimits: LIMITS });
    const r = await benchBackend(shared, redis.pid);
    await shared.close();
    console.log(`redis standalone${values.aof ? ' (appendfsync always)' : ' (no persistence)'}`);
    for (const [k, f] of Object.entries(r)) console.log(row(k, f, base[k]));
  } finally {
    await redis?.stop();
    await rm(dir, { recursive: true, force: true });
  }
}

await main();
