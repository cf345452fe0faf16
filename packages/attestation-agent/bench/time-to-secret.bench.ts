/**
 * Agent time-to-secret: wall time of the real `keyhold-agent get-resource` process (start to exit)
 * against swtpm and a local KBS, with a persisted AK (0x81010002), as ocicrypt's cmd mode starts it
 * once per layer key. Asserts nothing; prints median and p95 per variant and a breakdown.
 *
 *   node --import tsx packages/attestation-agent/bench/time-to-secret.bench.ts [--runs 20] [--profile DIR] [--json]
 *        [--only bundle+ek,...] [--baseline OTHER/bin/keyhold-agent.js]
 *
 * `--json` adds one `BENCH_RESULT {...}` line at the end (read by scripts/bench-summary.ts).
 *
 * --profile DIR writes a V8 CPU profile of each `bundle+ek` run to DIR.
 *
 * --only runs just the variants named (comma-separated; `bundle+ek` is always run). --baseline adds
 * the variant `baseline`: `bundle+ek` with another checkout's agent (e.g. a worktree of main, built),
 * interleaved with this one's runs on the same TPM, KBS and state dir, for an A/B of a change; its
 * phases are printed beside this checkout's.
 *
 * Needs swtpm (and the built packages: pnpm run build, which also bundles the agent CLI).
 * Variants, measured in the same run, interleaved:
 *   - `dist`        the unbundled entry (node dist/bin/keyhold-agent.js), fresh state dir: the EK is
 *                   created on every run (what the agent did before issue 11);
 *   - `bundle`      the bin loader (bundled CLI), fresh state dir (no EK-public cache);
 *   - `bundle+ek`   the bin loader with a kept state dir: the EK public comes from the cache that
 *                   the TPM's own answer for the AK (its qualified name) validates;
 *   - `keyprovider` as `bundle+ek`, but `keyprovider cmd` unwrapping one layer's annotation packet
 *                   (its KEK a KBS resource) from stdin, as ocicrypt's cmd mode runs it per layer key;
 *   - `resident`    `get-resource --resource-socket PATH` with the attestation daemon
 *                   (`keyhold-agent run --resource-socket PATH`, same TPM and state) running: the
 *                   daemon holds a fresh token and fetches; the process starts no TPM session and
 *                   no handshake (its own small bundle). The daemon's CPU per fetch is printed;
 *   - `keyprov+sock` `keyprovider cmd --resource-socket PATH`: one layer key through the daemon.
 * Breakdown of the `bundle+ek` runs: node start (bare `node -e 0` in the same run), module load
 * (`keyhold-agent --version` minus node start), TPM (swtpm CPU time per run), network + KBS (sum
 * of the HTTP requests' durations, from node:http's diagnostics channels), and the rest (agent work:
 * FFI, crypto, JSON). Wall times need a quiet machine; the agent's CPU time is less sensitive to load.
 *
 * NODE_EXTRA_CA_CERTS: node reads and parses that CA file at every start, before any user code
 * (measured on the bench machine, where the sandbox sets it to the system bundle of ~140 CAs:
 * `node -e 0` 37 ms without it, 112 ms with it). A default Debian 12 environment does not set it,
 * and the agent trusts a KBS CA through --cert-file, so the variants run without it; when it is set,
 * one more variant (`bundle+ek+ca`) runs with it and the bench prints what it costs.
 */
import { spawn } from 'node:child_process';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { SignJWT } from 'jose';
import { encodePrivateOptions, wrapAnnotationPacket } from '@keyhold/ocicrypt';
import { freePort, spawnProcess, startSwtpm, waitForPort } from '@keyhold/test-harness';

const { values } = parseArgs({
  options: { runs: { type: 'string', default: '20' }, profile: { type: 'string' }, json: { type: 'boolean', default: false }, only: { type: 'string' }, baseline: { type: 'string' } },
});
const RUNS = Number(values.runs);
const here = dirname(fileURLToPath(import.meta.url));
const AGENT_BIN = resolve(here, '..', 'bin', 'keyhold-agent.js');
const AGENT_DIST = resolve(here, '..', 'dist', 'bin', 'keyhold-agent.js');
const KBS_BIN = resolve(here, '..', '..', 'kbs', 'bin', 'keyhold-kbs.js');
const SECRET = 'time-to-secret-bench-value';

/**
 * Preloaded with --require into the agent process (CommonJS: an --import hook would start node's ESM
 * loader, which the agent itself does not need): records when node handed over (bootstrap done),
 * the duration of every HTTP request (node:http's diagnostics channels: request start to response
 * finish) and when each of the agent's phase marks came (its `keyhold:agent:phase` channel,
 * src/phase-channel.ts), and writes them with the process's CPU time to KH_TIMING_FILE at exit.
 */
const HOOK_SOURCE = `
const hookAt = performance.now();
const dc = require('node:diagnostics_channel');
const open = new Map();
let netMs = 0;
const done = ({ request }) => { const s = open.get(request); if (s !== undefined) { netMs += performance.now() - s; open.delete(request); } };
dc.subscribe('http.client.request.start', ({ request }) => open.set(request, performance.now()));
dc.subscribe('http.client.response.finish', done);
const marks = [];
dc.subscribe('keyhold:agent:phase', (name) => marks.push([name, performance.now()]));
process.on('exit', () => { const c = process.cpuUsage(); require('node:fs').writeFileSync(process.env.KH_TIMING_FILE, JSON.stringify({ hookAt, netMs, cpuMs: (c.user + c.system) / 1000, exitAt: performance.now(), timeOrigin: performance.timeOrigin, marks })); });
`;

interface Run {
  wallMs: number;
  /** CPU time of the agent process (user + system, all threads), from the hook. */
  cpuMs: number;
  tpmCpuMs: number;
  kbsCpuMs: number;
  hookAt: number;
  netMs: number;
  /** Phase name → its duration (ms): from spawn to the hook, between the agent's marks, to exit. */
  phases: Map<string, number>;
  /** `resident`: CPU time the daemon spent on this fetch. */
  daemonCpuMs?: number;
}

/**
 * The run's phases, each ending at a mark: `node start` (spawn until the hook runs: exec and node's
 * bootstrap), then one per agent mark (from the previous mark), `to exit event` (the last mark until
 * process 'exit') and `exit` (the 'exit' event until the parent sees the process end).
 */
function phasesOf(t: { hookAt: number; exitAt: number; timeOrigin: number; marks: [string, number][] }, spawnedAt: number, endedAt: number): Map<string, number> {
  const out = new Map<string, number>([['node start', t.timeOrigin + t.hookAt - spawnedAt]]);
  let prev = t.hookAt;
  for (const [name, at] of t.marks) {
    out.set(name, (out.get(name) ?? 0) + at - prev);
    prev = at;
  }
  out.set('to exit event', t.exitAt - prev);
  out.set('exit', endedAt - (t.timeOrigin + t.exitAt));
  return out;
}

/** CPU time (user+system) a process used so far, from /proc. */
async function cpuMs(pid: number | undefined): Promise<number> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => '');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return ((Number(f[11]) + Number(f[12])) * 1000) / 100;
}

/** Now, in ms since the epoch, on the clock of performance.timeOrigin (comparable across processes). */
const epochMs = (): number => performance.timeOrigin + performance.now();

/** The environment the agent runs in: this one without NODE_EXTRA_CA_CERTS (see the header). */
const AGENT_ENV: NodeJS.ProcessEnv = Object.fromEntries(Object.entries(process.env).filter(([k]) => k !== 'NODE_EXTRA_CA_CERTS'));
const EXTRA_CA = process.env['NODE_EXTRA_CA_CERTS'];
/** --baseline: another checkout's bin loader, run as `bundle+ek` beside this one's. */
const BASELINE = values.baseline !== undefined ? resolve(values.baseline) : undefined;

function runProcess(args: string[], env: NodeJS.ProcessEnv = AGENT_ENV, input?: string): Promise<{ code: number | null; stdout: string; stderr: string; wallMs: number; spawnedAt: number; endedAt: number }> {
  return new Promise((resolvePromise, reject) => {
    const spawnedAt = epochMs();
    const t0 = process.hrtime.bigint();
    const child = spawn(process.execPath, args, { env, stdio: [input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'] });
    if (input !== undefined) child.stdin?.end(input);
    let stdout = '';
    let stderr = '';
    child.stdout!.on('data', (d: Buffer) => (stdout += d));
    child.stderr!.on('data', (d: Buffer) => (stderr += d));
    child.on('error', reject);
    child.on('exit', (code) => resolvePromise({ code, stdout, stderr, wallMs: Number(process.hrtime.bigint() - t0) / 1e6, spawnedAt, endedAt: epochMs() }));
  });
}

const pct = (xs: number[], p: number): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] ?? NaN;
};
const median = (xs: number[]): number => pct(xs, 50);

/** What each phase of the breakdown covers (a phase ends at its mark; see src/phase-channel.ts). */
const PHASE_NOTES: Record<string, string> = {
  'node start': 'spawn until the first user code: exec and node bootstrap',
  'loader:check': 'bin loader: is the bundle current (stat of its inputs)',
  'loader:compile': 'read the bundle and its code cache, V8 deserialises',
  'cli:init': "the bundle's top level (cold get-resource bundle: its argument check; CLI: commander, the declaration)",
  'cli:modules': "get-resource's modules loaded and initialised, config (CLI: argv parsed)",
  'tpm:koffi': 'require koffi (native addon)',
  'tpm:dlopen': 'dlopen tpm2-tss: tctildr, esys, mu, rc',
  'tpm:bind': 'koffi prototypes of the ESAPI/MU functions',
  'tpm:tcti': 'Tss2_TctiLdr_Initialize: TCTI module dlopen and connect',
  'tpm:esys': 'Esys_Initialize',
  'tpm:ak': 'persistent AK: TR_FromTPMPublic, ReadPublic',
  session: 'attester, KBS client and tee-key source built',
  identity: 'EK public (cache, vouched for by the AK qualified name) and EK certificate (cache: a valid certificate of that EK, < 1 day old; else NV)',
  'kbs:auth': 'POST /kbs/v0/auth (HTTP; the tee key is made while the KBS answers)',
  'tee-key': 'challenge parsed, tee key ready',
  evidence: 'PCR reads, TPM2_Quote, evidence JSON',
  'kbs:attest': 'POST /kbs/v0/attest (HTTP; the KBS appraises)',
  'kbs:resource': 'GET the resource (HTTP)',
  jwe: 'JWE decrypted',
  close: 'session closed: HTTP agent, AK handle, Esys_Finalize, TCTI',
  output: 'secret written to stdout',
  'to exit event': "last mark until process 'exit' (the event loop drains)",
  exit: "'exit' event until the parent sees the process end",
};
const f1 = (n: number): string => n.toFixed(1).padStart(7);

async function main(): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'keyhold-tts-'));
  const swtpm = await startSwtpm({ ekCert: true });
  const admin = generateKeyPairSync('ed25519');
  await writeFile(join(dir, 'admin.pub.pem'), admin.publicKey.export({ format: 'pem', type: 'spki' }));
  const port = await freePort();
  const kbs = spawnProcess({
    name: 'keyhold-kbs',
    command: process.execPath,
    args: [KBS_BIN, 'serve', '--insecure-http', '--listen', `127.0.0.1:${port}`, '--data-dir', join(dir, 'kbs'), '--admin-public-key', join(dir, 'admin.pub.pem'), '--log-level', 'warn'],
  });
  let daemon: ReturnType<typeof spawnProcess> | undefined;
  try {
    await waitForPort(port, kbs, { timeoutMs: 20_000 });
    const url = `http://127.0.0.1:${port}`;
    const now = Math.floor(Date.now() / 1000);
    const token = await new SignJWT({ role: 'admin' }).setProtectedHeader({ alg: 'EdDSA' }).setSubject('bench').setIssuedAt(now).setExpirationTime(now + 3600).sign(admin.privateKey);
    const adminCall = async (method: string, path: string, body: string | Uint8Array, type: string): Promise<void> => {
      const res = await fetch(`${url}${path}`, { method, headers: { authorization: `Bearer ${token}`, 'content-type': type }, body });
      if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${await res.text()}`);
    };
    const common = ['--url', url, '--tcti', swtpm.tcti, '--ak-handle', '0x81010002'];
    const keptState = join(dir, 'agent-state');
    // The node's AK, created and persisted on first use, trusted by the owner; one secret.
    const ak = await runProcess([AGENT_BIN, 'ak', '--json', ...common, '--state-dir', keptState]);
    if (ak.code !== 0) throw new Error(`keyhold-agent ak failed: ${ak.stderr}`);
    const akPublic = (JSON.parse(ak.stdout) as { ak_public: string }).ak_public;
    await adminCall('POST', '/kbs/v0/reference-value', JSON.stringify({ version: '0.1.0', type: 'sample', payload: JSON.stringify({ trusted_ak: [akPublic] }) }), 'application/json');
    await adminCall('POST', '/kbs/v0/resource/default/key/bench', SECRET, 'application/octet-stream');

    const timingFile = join(dir, 'timing.json');
    const hookFile = join(dir, 'timing-hook.cjs');
    await writeFile(hookFile, HOOK_SOURCE);
    // What ocicrypt's cmd mode hands the agent for one layer: a KEK released as a KBS resource wraps the layer's options.
    const kek = randomBytes(32);
    await adminCall('POST', '/kbs/v0/resource/default/image-kek/bench', kek, 'application/octet-stream');
    const optsData = encodePrivateOptions({ symkey: randomBytes(32), nonce: randomBytes(16), digest: `sha256:${'ab'.repeat(32)}` });
    const packet = Buffer.from(wrapAnnotationPacket(optsData, { kid: 'kbs:///default/image-kek/bench', kek })).toString('base64');
    const unwrapRequest = JSON.stringify({ op: 'keyunwrap', keywrapparams: { ec: null, optsdata: null }, keyunwrapparams: { dc: { Parameters: { 'attestation-agent': ['RW5hYmxlZA=='] } }, annotation: packet } });
    const once = async (entry: string, stateDir: string, profile = false, command: 'get-resource' | 'keyprovider' = 'get-resource', extra: string[] = [], env: NodeJS.ProcessEnv = AGENT_ENV): Promise<Run> => {
      const tpm0 = await cpuMs(swtpm.pid);
      const kbs0 = await cpuMs(kbs.pid);
      const prof = profile && values.profile !== undefined ? ['--cpu-prof', `--cpu-prof-dir=${values.profile}`] : [];
      const args = command === 'get-resource' ? ['get-resource', 'kbs:///default/key/bench'] : ['keyprovider', 'cmd'];
      // Through the daemon's socket, only the fast path's own form (the TPM and KBS flags are the daemon's).
      const rest = extra.length > 0 ? extra : [...common, '--state-dir', stateDir];
      const r = await runProcess([...prof, '--require', hookFile, entry, ...args, ...rest], { ...env, KH_TIMING_FILE: timingFile }, command === 'keyprovider' ? unwrapRequest : undefined);
      if (command === 'get-resource' && (r.code !== 0 || r.stdout !== SECRET)) throw new Error(`get-resource failed (${r.code}): ${r.stderr}`);
      if (command === 'keyprovider' && (r.code !== 0 || !r.stdout.includes(Buffer.from(optsData).toString('base64')))) throw new Error(`keyprovider cmd failed (${r.code}): ${r.stderr}`);
      const t = JSON.parse(await readFile(timingFile, 'utf8')) as { hookAt: number; netMs: number; cpuMs: number; exitAt: number; timeOrigin: number; marks: [string, number][] };
      return { wallMs: r.wallMs, cpuMs: t.cpuMs, tpmCpuMs: (await cpuMs(swtpm.pid)) - tpm0, kbsCpuMs: (await cpuMs(kbs.pid)) - kbs0, hookAt: t.hookAt, netMs: t.netMs, phases: phasesOf(t, r.spawnedAt, r.endedAt) };
    };
    const ALL = ['dist', 'bundle', 'bundle+ek', 'keyprovider', 'resident', 'keyprov+sock', ...(EXTRA_CA !== undefined ? ['bundle+ek+ca'] : []), ...(BASELINE !== undefined ? ['baseline'] : [])];
    const picked = values.only?.split(',').map((v) => v.trim()) ?? ALL;
    const unknown = picked.filter((v) => !ALL.includes(v));
    if (unknown.length > 0) throw new Error(`--only: unknown variant(s) ${unknown.join(', ')} (known: ${ALL.join(', ')})`);
    const wanted = new Set([...picked, 'bundle+ek', ...(BASELINE !== undefined ? ['baseline'] : [])]);
    const variants: Record<string, Run[]> = Object.fromEntries(ALL.filter((v) => wanted.has(v)).map((v) => [v, []]));
    // Warm-up: file cache, the KBS's first requests, and the EK-public cache of the kept state dir.
    await once(AGENT_BIN, keptState);
    if (BASELINE !== undefined) await once(BASELINE, keptState);
    if (wanted.has('dist')) await once(AGENT_DIST, join(dir, 'warm'));
    if (wanted.has('keyprovider')) await once(AGENT_BIN, keptState, false, 'keyprovider');

    // The resident daemon: it attests at start, then every hour (well after the bench ends).
    const socket = join(dir, 'agent.sock');
    const resident = async (): Promise<Run> => {
      const pid = daemon?.pid;
      const agent0 = await cpuMs(pid);
      const r = await once(AGENT_BIN, keptState, false, 'get-resource', ['--resource-socket', socket]);
      return { ...r, daemonCpuMs: (await cpuMs(pid)) - agent0 };
    };
    if (wanted.has('resident') || wanted.has('keyprov+sock')) {
      daemon = spawnProcess({
        name: 'keyhold-agent run',
        command: process.execPath,
        args: [AGENT_BIN, 'run', '--resource-socket', socket, '--interval', '1h', '--log-level', 'warn', ...common, '--state-dir', keptState],
      });
      for (let waited = 0; ; waited += 100) {
        const probe = await runProcess([AGENT_BIN, 'get-resource', '--resource-socket', socket, 'kbs:///default/key/bench']);
        if (probe.code === 0) break;
        if (waited > 20_000) throw new Error(`the daemon did not serve its socket: ${probe.stderr}`);
        await new Promise((r) => setTimeout(r, 100));
      }
      await resident();
    }
    const nodeStartWithCa: number[] = [];
    const nodeStart: number[] = [];
    const version: number[] = [];
    for (let i = 0; i < RUNS; i++) {
      variants.dist?.push(await once(AGENT_DIST, join(dir, `fresh-d${i}`)));
      variants.bundle?.push(await once(AGENT_BIN, join(dir, `fresh-b${i}`)));
      // The A/B pair back to back, in alternating order.
      if (BASELINE !== undefined && i % 2 === 1) variants.baseline!.push(await once(BASELINE, keptState));
      variants['bundle+ek']!.push(await once(AGENT_BIN, keptState, true));
      if (BASELINE !== undefined && i % 2 === 0) variants.baseline!.push(await once(BASELINE, keptState));
      variants.keyprovider?.push(await once(AGENT_BIN, keptState, false, 'keyprovider'));
      if (variants.resident !== undefined) variants.resident.push(await resident());
      variants['keyprov+sock']?.push(await once(AGENT_BIN, keptState, false, 'keyprovider', ['--resource-socket', socket]));
      if (variants['bundle+ek+ca'] !== undefined) {
        variants['bundle+ek+ca'].push(await once(AGENT_BIN, keptState, false, 'get-resource', [], process.env));
        nodeStartWithCa.push((await runProcess(['-e', '0'], process.env)).wallMs);
      }
      nodeStart.push((await runProcess(['-e', '0'])).wallMs);
      version.push((await runProcess([AGENT_BIN, '--version'])).wallMs);
    }

    console.log(`keyhold-agent get-resource on swtpm, persisted AK, ${RUNS} runs per variant (interleaved); node ${process.version}`);
    console.log(`${'variant'.padEnd(13)} ${'median ms'.padStart(9)} ${'p95 ms'.padStart(7)} ${'agent cpu'.padStart(9)} ${'swtpm cpu'.padStart(9)} ${'net+KBS'.padStart(7)} ${'KBS cpu'.padStart(7)}`);
    for (const [name, runs] of Object.entries(variants)) {
      console.log(
        `${name.padEnd(13)} ${f1(median(runs.map((r) => r.wallMs))).padStart(9)} ${f1(pct(runs.map((r) => r.wallMs), 95))} ${f1(median(runs.map((r) => r.cpuMs))).padStart(9)} ${f1(median(runs.map((r) => r.tpmCpuMs))).padStart(9)} ${f1(median(runs.map((r) => r.netMs)))} ${f1(median(runs.map((r) => r.kbsCpuMs)))}`,
      );
    }
    console.log('(swtpm and KBS CPU come from /proc in 10 ms ticks; the agent CPU from process.cpuUsage at exit)');
    /** A variant's median wall time, undefined when --only left it out. */
    const wallOf = (name: string): number | undefined => (variants[name] !== undefined ? median(variants[name].map((r) => r.wallMs)) : undefined);
    const daemonCpu = variants.resident !== undefined ? median(variants.resident.map((r) => r.daemonCpuMs ?? 0)) : undefined;
    const residentMs = wallOf('resident');
    if (residentMs !== undefined) console.log(`resident: the daemon spent ${daemonCpu!.toFixed(1)} ms CPU per fetch (median, /proc ticks); wall ${residentMs.toFixed(1)} ms = node start + ${(residentMs - median(nodeStart)).toFixed(1)} ms`);
    const c = variants['bundle+ek']!;
    const wall = median(c.map((r) => r.wallMs));
    const node0 = median(nodeStart);
    const load = Math.max(0, median(version) - node0);
    const tpm = median(c.map((r) => r.tpmCpuMs));
    const net = median(c.map((r) => r.netMs));
    console.log(`\nbreakdown of bundle+ek (medians, ms): node start ${node0.toFixed(1)} (bare node -e 0; in-process hand-over at ${median(c.map((r) => r.hookAt)).toFixed(1)}), module load ${load.toFixed(1)} (--version ${median(version).toFixed(1)} − node start), TPM ${tpm.toFixed(1)} (swtpm CPU), network+KBS ${net.toFixed(1)}, rest ${(wall - node0 - load - tpm - net).toFixed(1)}`);
    const base = variants.baseline;
    const names = [...new Set([...c, ...(base ?? [])].flatMap((r) => [...r.phases.keys()]))];
    const phaseMedians = (runs: Run[]): Record<string, number> => Object.fromEntries(names.map((n) => [n, median(runs.map((r) => r.phases.get(n) ?? 0))]));
    const phaseMs = phaseMedians(c);
    const basePhaseMs = base !== undefined ? phaseMedians(base) : undefined;
    const sum = (m: Record<string, number>): number => Object.values(m).reduce((x, y) => x + y, 0);
    console.log(`\nphases of bundle+ek (medians, ms; each from the previous mark; HTTP inside the kbs:* phases: ${net.toFixed(1)} ms in all)${basePhaseMs !== undefined ? `; baseline ${BASELINE} beside` : ''}`);
    if (basePhaseMs !== undefined) console.log(`  ${'phase'.padEnd(14)} ${'this'.padStart(7)} ${'baseline'.padStart(8)} ${'Δ'.padStart(7)}`);
    for (const n of names) {
      const cols = basePhaseMs !== undefined ? ` ${f1(basePhaseMs[n] ?? 0).padStart(8)} ${f1((phaseMs[n] ?? 0) - (basePhaseMs[n] ?? 0))}` : '';
      console.log(`  ${n.padEnd(14)} ${f1(phaseMs[n] ?? 0)}${cols}  ${PHASE_NOTES[n] ?? ''}`);
    }
    console.log(`  ${'sum'.padEnd(14)} ${f1(sum(phaseMs))}${basePhaseMs !== undefined ? ` ${f1(sum(basePhaseMs)).padStart(8)} ${f1(sum(phaseMs) - sum(basePhaseMs))}` : ''}  (sum of medians; wall median ${wall.toFixed(1)})`);
    const before = wallOf('dist');
    console.log(`time-to-secret: ${wall.toFixed(1)} ms median (target < 150 ms: ${wall < 150 ? 'met' : 'NOT met'})${before !== undefined ? `; unbundled, no EK cache ${before.toFixed(1)} ms (${(before / wall).toFixed(2)}× slower)` : ''}`);
    const baseMs = wallOf('baseline');
    if (baseMs !== undefined) {
      const diffs = c.map((r, i) => (base![i] !== undefined ? base![i].wallMs - r.wallMs : NaN)).filter((d) => !Number.isNaN(d));
      console.log(`A/B: this ${wall.toFixed(1)} ms vs baseline ${baseMs.toFixed(1)} ms median (${(baseMs - wall).toFixed(1)} ms, ${(baseMs / wall).toFixed(2)}×); median of the paired differences ${median(diffs).toFixed(1)} ms; agent CPU ${median(c.map((r) => r.cpuMs)).toFixed(1)} vs ${median(base!.map((r) => r.cpuMs)).toFixed(1)} ms`);
    }
    const withCa = wallOf('bundle+ek+ca');
    if (withCa !== undefined) {
      console.log(`NODE_EXTRA_CA_CERTS=${EXTRA_CA} is set here: with it, bundle+ek takes ${withCa.toFixed(1)} ms and bare node -e 0 ${median(nodeStartWithCa).toFixed(1)} ms (${(median(nodeStartWithCa) - median(nodeStart)).toFixed(1)} ms of every node start; the variants above run without it)`);
    }
    if (residentMs !== undefined) console.log(`time-to-secret through the resident daemon: ${residentMs.toFixed(1)} ms median (target < 150 ms: ${residentMs < 150 ? 'met' : 'NOT met'}); bare node start ${median(nodeStart).toFixed(1)} ms`);
    // --json: one machine-readable line for scripts/bench-summary.ts.
    if (values.json) {
      const cpu = median(c.map((r) => r.cpuMs));
      const keyproviderCmdMs = wallOf('keyprovider');
      console.log(
        `BENCH_RESULT ${JSON.stringify({
          bench: 'agent-time-to-secret',
          runs: RUNS,
          medianMs: wall,
          p95Ms: pct(c.map((r) => r.wallMs), 95),
          agentCpuMs: cpu,
          nodeStartMs: node0,
          ...(before !== undefined ? { unbundledNoEkCacheMs: before } : {}),
          ...(keyproviderCmdMs !== undefined ? { keyproviderCmdMs } : {}),
          ...(wallOf('keyprov+sock') !== undefined ? { keyproviderSocketMs: wallOf('keyprov+sock') } : {}),
          ...(residentMs !== undefined ? { residentMs, residentP95Ms: pct(variants.resident!.map((r) => r.wallMs), 95), residentDaemonCpuMs: daemonCpu } : {}),
          ...(withCa !== undefined ? { withExtraCaMs: withCa, nodeStartWithExtraCaMs: median(nodeStartWithCa) } : {}),
          ...(baseMs !== undefined ? { baselineMs: baseMs, baselinePhasesMs: basePhaseMs } : {}),
          phasesMs: phaseMs,
        })}`,
      );
    }
  } finally {
    await daemon?.stop();
    await kbs.stop();
    await swtpm.stop();
    await rm(dir, { recursive: true, force: true });
  }
}

await main();
