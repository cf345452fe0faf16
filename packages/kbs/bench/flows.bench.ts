/**
 * Benchmark: N concurrent simulated agents run complete KBS flows (auth → attest → resource)
 * against a local `keyhold-kbs` process. Agents quote with the agent library's software TPM
 * (an AK registered as trusted; no swtpm in the loop) and decrypt the JWE like a real agent.
 * Prints flows/s, per-step latency percentiles, errors, and the KBS's peak RSS, next to a
 * baseline measured in the same run (GET /healthz requests/s on the same server and client).
 *
 *   node --import tsx packages/kbs/bench/flows.bench.ts [--concurrency 32] [--seconds 10] [--ak ecc|rsa] [--profile DIR]
 *
 * Environment: BENCH_KBS_EXTRA (TOML appended to the KBS config, `\n` for newlines) and
 * BENCH_KBS_UV (UV_THREADPOOL_SIZE for the KBS process only).
 */
import { generateKeyPairSync } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { SignJWT, flattenedDecrypt, type FlattenedJWE } from 'jose';
import { Pool } from 'undici';
import { fitReportData, runtimeDataDigest, PROTOCOL_VERSION, TPM_REPORT_DATA_BYTES } from '@keyhold/protocol';
import { collectTpmEvidence, createSoftwareTpm, generateTeeKeyPair, loadOrCreateAk, tpm2bPublicToSpkiDer } from '@keyhold/attestation-agent';
import { freePort, spawnProcess, waitForPort } from '@keyhold/test-harness';

const { values } = parseArgs({
  options: { concurrency: { type: 'string', default: '32' }, seconds: { type: 'string', default: '10' }, ak: { type: 'string', default: 'ecc' }, profile: { type: 'string' } },
});
const CONCURRENCY = Number(values.concurrency);
const SECONDS = Number(values.seconds);
const AK_ALG = values.ak === 'rsa' ? 'rsa' : 'ecc';
const here = dirname(fileURLToPath(import.meta.url));
const KBS_BIN = resolve(here, '..', 'bin', 'keyhold-kbs.js');

/** CPU time (user+system, all threads) a process used so far, from /proc. */
async function procCpuMs(pid: number | undefined): Promise<number> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => '');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const ticks = Number(fields[11]) + Number(fields[12]);
  return (ticks * 1000) / 100;
}

/** Per-thread user and system CPU ms of a process, keyed by thread id (the main thread's id is the pid). */
async function threadCpuMs(pid: number | undefined): Promise<Map<number, { user: number; sys: number }>> {
  const out = new Map<number, { user: number; sys: number }>();
  const tids = await readdir(`/proc/${pid}/task`).catch(() => [] as string[]);
  for (const tid of tids) {
    const stat = await readFile(`/proc/${pid}/task/${tid}/stat`, 'utf8').catch(() => '');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    out.set(Number(tid), { user: (Number(fields[11]) * 1000) / 100, sys: (Number(fields[12]) * 1000) / 100 });
  }
  return out;
}

function pct(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}
const fmt = (n: number): string => n.toFixed(2).padStart(8);

async function main(): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'keyhold-bench-'));
  const admin = generateKeyPairSync('ed25519');
  await writeFile(join(dir, 'admin.pub.pem'), admin.publicKey.export({ format: 'pem', type: 'spki' }));
  const port = await freePort();
  // All simulated agents share one loopback address: lift the per-address /auth rate limit, which
  // would otherwise (correctly) throttle them. Everything else is the KBS's default configuration
  // (embedded KMS, audit trail on, metrics on).
  await writeFile(join(dir, 'kbs.toml'), '[rate_limit]\nauth_per_sec = 1000000\nauth_burst = 1000000\n' + (process.env['BENCH_KBS_EXTRA'] ?? '').replace(/\\n/g, '\n'));
  const profileArgs = values.profile !== undefined ? ['--cpu-prof', `--cpu-prof-dir=${values.profile}`] : [];
  const kbsProc = spawnProcess({
    name: 'keyhold-kbs',
    command: process.execPath,
    env: { ...process.env, ...(process.env['BENCH_KBS_UV'] !== undefined ? { UV_THREADPOOL_SIZE: process.env['BENCH_KBS_UV'] } : {}) },
    args: [...profileArgs, KBS_BIN, 'serve', '--listen', `127.0.0.1:${port}`, '--data-dir', join(dir, 'kbs'), '--admin-public-key', join(dir, 'admin.pub.pem'), '--log-level', 'warn', '--config', join(dir, 'kbs.toml')],
  });
  await waitForPort(port, kbsProc);
  const base = `http://127.0.0.1:${port}`;
  const pool = new Pool(base, { connections: CONCURRENCY, pipelining: 1 });

  // One AK key shared by the simulated agents (each has its own software TPM and PCRs).
  const akKey = AK_ALG === 'rsa' ? generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey : generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
  const agents = await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      const tpm = createSoftwareTpm({ akKeys: { [AK_ALG]: akKey } });
      const { ak } = await loadOrCreateAk(tpm, { persistentHandle: 0x81010002, persist: true, alg: AK_ALG });
      return { tpm, ak };
    }),
  );
  const akSpki = Buffer.from(tpm2bPublicToSpkiDer(agents[0]!.ak.publicArea)).toString('base64');
  const adminToken = await new SignJWT({}).setProtectedHeader({ alg: 'EdDSA' }).setExpirationTime('1h').sign(admin.privateKey);
  const adminHeaders = { authorization: `Bearer ${adminToken}` };
  const payload = Buffer.from(JSON.stringify({ trusted_ak: [akSpki] })).toString('base64');
  await pool.request({ path: '/kbs/v0/reference-value', method: 'POST', headers: { ...adminHeaders, 'content-type': 'application/json' }, body: JSON.stringify({ version: '0.1.0', type: 'sample', payload }) }).then((r) => r.body.dump());
  const SECRET = Buffer.from('bench-secret-value-0123456789');
  await pool.request({ path: '/kbs/v0/resource/default/key/bench', method: 'POST', headers: adminHeaders, body: SECRET }).then((r) => r.body.dump());

  // Baseline in the same run: GET /healthz at the same concurrency.
  const baseDeadline = performance.now() + Math.min(3, SECONDS) * 1000;
  let baseCount = 0;
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (performance.now() < baseDeadline) {
        const r = await pool.request({ path: '/healthz', method: 'GET' });
        await r.body.dump();
        baseCount++;
      }
    }),
  );
  const baseRps = baseCount / Math.min(3, SECONDS);

  const lat = { auth: [] as number[], attest: [] as number[], resource: [] as number[], flow: [] as number[] };
  let flows = 0;
  const errors = new Map<string, number>();
  const deadline = performance.now() + SECONDS * 1000;
  const kbsCpu0 = await procCpuMs(kbsProc.pid);
  const kbsThreads0 = await threadCpuMs(kbsProc.pid);
  const genCpu0 = process.cpuUsage();
  const started = performance.now();
  await Promise.all(
    agents.map(async ({ tpm, ak }) => {
      while (performance.now() < deadline) {
        const t0 = performance.now();
        try {
          const a = await pool.request({ path: '/kbs/v0/auth', method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ version: PROTOCOL_VERSION, tee: 'tpm', 'extra-params': {} }) });
          const ch = (await a.body.json()) as { nonce: string };
          const setCookie = a.headers['set-cookie'];
          const cookie = /kbs-session-id=([^;]+)/.exec(Array.isArray(setCookie) ? setCookie.join(';') : (setCookie ?? ''))?.[1];
          if (a.statusCode !== 200 || cookie === undefined) throw new Error(`auth ${a.statusCode}`);
          const t1 = performance.now();
          const teeKey = await generateTeeKeyPair('ec');
          const digest = runtimeDataDigest({ nonce: ch.nonce, teePubkey: teeKey.publicJwk, additionalEvidence: '' });
          const evidence = await collectTpmEvidence(tpm, ak, fitReportData(digest, TPM_REPORT_DATA_BYTES));
          const body = JSON.stringify({ 'runtime-data': { nonce: ch.nonce, 'tee-pubkey': teeKey.publicJwk }, 'tee-evidence': { primary_evidence: evidence, additional_evidence: '' } });
          const at = await pool.request({ path: '/kbs/v0/attest', method: 'POST', headers: { 'content-type': 'application/json', cookie: `kbs-session-id=${cookie}` }, body });
          await at.body.dump();
          if (at.statusCode !== 200) throw new Error(`attest ${at.statusCode}`);
          const t2 = performance.now();
          const rr = await pool.request({ path: '/kbs/v0/resource/default/key/bench', method: 'GET', headers: { cookie: `kbs-session-id=${cookie}` } });
          const jwe = (await rr.body.json()) as FlattenedJWE;
          if (rr.statusCode !== 200) throw new Error(`resource ${rr.statusCode}`);
          const { plaintext } = await flattenedDecrypt(jwe, teeKey.privateKey);
          if (!Buffer.from(plaintext).equals(SECRET)) throw new Error('wrong secret');
          const t3 = performance.now();
          lat.auth.push(t1 - t0);
          lat.attest.push(t2 - t1);
          lat.resource.push(t3 - t2);
          lat.flow.push(t3 - t0);
          flows++;
        } catch (err) {
          const k = (err as Error).message;
          errors.set(k, (errors.get(k) ?? 0) + 1);
        }
      }
    }),
  );
  const elapsed = (performance.now() - started) / 1000;
  const kbsCpuMs = (await procCpuMs(kbsProc.pid)) - kbsCpu0;
  const kbsThreads1 = await threadCpuMs(kbsProc.pid);
  const genCpu = process.cpuUsage(genCpu0);
  const genCpuMs = (genCpu.user + genCpu.system) / 1000;
  const status = await readFile(`/proc/${kbsProc.pid}/status`, 'utf8').catch(() => '');
  const hwmKb = Number(/VmHWM:\s+(\d+)/.exec(status)?.[1] ?? NaN);
  await pool.close();
  await kbsProc.stop();
  await rm(dir, { recursive: true, force: true });

  const out = process.stdout;
  out.write(`keyhold KBS flow benchmark: ${CONCURRENCY} concurrent agents, ${SECONDS}s, AK ${AK_ALG}, tee key EC P-256\n`);
  out.write(`complete flows:        ${flows} in ${elapsed.toFixed(2)} s = ${(flows / elapsed).toFixed(1)} flows/s\n`);
  out.write(`baseline GET /healthz: ${baseRps.toFixed(0)} req/s (same server, same client)\n`);
  out.write(`ratio: ${((3 * flows) / elapsed / baseRps).toFixed(3)} (flow requests/s ÷ healthz req/s)\n`);
  out.write(`errors:                ${[...errors].map(([k, v]) => `${k}×${v}`).join(', ') || 0}\n`);
  out.write('latency ms        p50      p95      p99\n');
  for (const [k, v] of Object.entries(lat)) {
    const s = v.sort((a, b) => a - b);
    out.write(`  ${k.padEnd(10)} ${fmt(pct(s, 50))} ${fmt(pct(s, 95))} ${fmt(pct(s, 99))}\n`);
  }
  out.write(`KBS peak RSS:          ${(hwmKb / 1024).toFixed(1)} MiB\n`);
  const perFlow = (ms: number): string => (ms / flows).toFixed(2);
  let main = { user: 0, sys: 0 };
  const others = { user: 0, sys: 0 };
  for (const [tid, t1] of kbsThreads1) {
    const t0 = kbsThreads0.get(tid) ?? { user: 0, sys: 0 };
    const d = { user: t1.user - t0.user, sys: t1.sys - t0.sys };
    if (tid === kbsProc.pid) main = d;
    else {
      others.user += d.user;
      others.sys += d.sys;
    }
  }
  out.write(`KBS CPU per flow:      main thread ${perFlow(main.user)} user + ${perFlow(main.sys)} sys ms, other threads ${perFlow(others.user)} user + ${perFlow(others.sys)} sys ms\n`);
  out.write(`CPU per flow:          KBS ${(kbsCpuMs / flows).toFixed(2)} ms, load generator ${(genCpuMs / flows).toFixed(2)} ms (all threads; 2 cores = 2000 ms/s)\n`);
}

main().catch((err: unknown) => {
  process.stderr.write(`bench failed: ${err instanceof Error ? err.stack : String(err)}\n`);
  process.exitCode = 1;
});
