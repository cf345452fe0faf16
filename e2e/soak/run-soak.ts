/**
 * The soak (issue 12), driven by scripts/soak.ts: a `keyhold-kbs serve` process over HTTPS (throwaway
 * CA; embedded state, audit trail on) under honest and hostile simulated agents and an admin writer
 * for N minutes. It samples the KBS's RSS, then stops the load, stops the KBS and verifies the audit
 * chain it wrote with `keyhold audit --file ... --verify`. Returns the figures; the caller prints them
 * and decides the exit status.
 */
import { spawn } from 'node:child_process';
import { readFile, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Agent } from 'undici';
import { createAdminKeys } from '../harness/admin-keys.js';
import { startKbsProcess } from '../harness/kbs-process.js';
import { CLI_BIN } from '../harness/repo.js';
import { createTlsPki } from '../harness/tls-pki.js';
import { adminWriter, attacks, call, honestAgent, hostileAgent, makeNode, newStats, STABLE_PATH, type Client, type Stats } from './soak-agents.js';

export interface SoakOptions {
  readonly minutes: number;
  readonly honest: number;
  readonly hostile: number;
  readonly adminEveryMs: number;
  readonly sampleSeconds: number;
  /** Called with each RSS sample line as it is taken. */
  readonly onSample: (line: string) => void;
}

export interface RssSample {
  readonly t: number;
  readonly rssMiB: number;
}

export interface SoakResult {
  readonly seconds: number;
  readonly stats: Stats;
  readonly rss: readonly RssSample[];
  readonly peakMiB: number;
  readonly audit: { readonly ok: boolean; readonly line: string };
  readonly kbsExitedEarly: boolean;
}

async function rssMiB(pid: number): Promise<{ rss: number; peak: number }> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const kib = (key: string): number => Number(new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? NaN);
  return { rss: kib('VmRSS') / 1024, peak: kib('VmHWM') / 1024 };
}

function verifyAudit(file: string): Promise<{ ok: boolean; line: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI_BIN, 'audit', '--file', file, '--verify'], { stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    child.stderr.on('data', (b: Buffer) => (err += b.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ ok: code === 0, line: err.trim().split('\n').pop() ?? '' }));
  });
}

export async function runSoak(o: SoakOptions): Promise<SoakResult> {
  const dir = await mkdtemp(join(tmpdir(), 'keyhold-soak-'));
  try {
    const [pki, admin] = await Promise.all([createTlsPki(join(dir, 'tls')), createAdminKeys(dir)]);
    // Short sessions so the sessions' steady state is reached within a few minutes; rate limits high
    // enough that the honest agents (all on 127.0.0.1, one bucket) are not throttled.
    const kbs = await startKbsProcess({
      dataDir: join(dir, 'kbs'),
      adminPublicKeyFile: admin.publicKeyFile,
      tls: pki,
      configToml: 'session_ttl_ms = 20000\n[rate_limit]\nauth_per_sec = 5000\nauth_burst = 10000\nadmin_per_sec = 5000\nadmin_burst = 10000\n',
    });
    const pid = kbs.proc.child.pid!;
    const dispatcher = new Agent({ connect: { ca: pki.caPem }, connections: 64 });
    const client: Client = { url: kbs.url, dispatcher, adminToken: await admin.token({ lifetimeS: Math.ceil(o.minutes * 60) + 900 }), adminKey: admin.privateKey };
    const stats = newStats();
    try {
      // The owner: trusts the honest nodes' AKs, uploads the secret they fetch.
      const honest = await Promise.all(Array.from({ length: o.honest }, () => makeNode()));
      const untrusted = await makeNode();
      const auth = { authorization: `Bearer ${client.adminToken}` };
      const payload = Buffer.from(JSON.stringify({ trusted_ak: honest.map((n) => n.akB64) })).toString('base64');
      const rv = await call(client, stats, 'POST', '/kbs/v0/reference-value', { headers: { ...auth, 'content-type': 'application/json' }, body: JSON.stringify({ version: '0.1.0', type: 'sample', payload }) });
      if (rv.status !== 200) throw new Error(`soak set-up: trusted_ak refused: ${rv.text}`);
      const secret = `soak-secret-${Date.now()}`;
      const put = await call(client, stats, 'POST', `/kbs/v0/resource/${STABLE_PATH}`, { headers: auth, body: secret });
      if (put.status !== 200) throw new Error(`soak set-up: secret upload refused: ${put.text}`);

      let stopped = false;
      const stop = (): boolean => stopped;
      const list = attacks(untrusted, honest[0]!);
      const t0 = performance.now();
      const rss: RssSample[] = [];
      let peak = 0;
      const sample = async (): Promise<void> => {
        const m = await rssMiB(pid);
        const t = (performance.now() - t0) / 1000;
        peak = Math.max(peak, m.peak);
        rss.push({ t, rssMiB: m.rss });
        const refused = [...stats.refusals.values()].reduce((a, b) => a + b, 0);
        const errors = [...stats.serverErrors.values()].reduce((a, b) => a + b, 0);
        o.onSample(
          `t=${t.toFixed(0).padStart(4)}s  flows ${String(stats.flows).padStart(7)}  (${(stats.flows / Math.max(t, 1e-3)).toFixed(1)}/s)  attacks ${String(stats.attacks).padStart(6)}  refused ${String(refused).padStart(6)}  admin ops ${String(stats.adminWrites).padStart(5)}  5xx ${errors}  RSS ${m.rss.toFixed(1)} MiB`,
        );
      };
      await sample();
      const sampler = setInterval(() => void sample(), o.sampleSeconds * 1000);
      const workers = [
        ...honest.map((n) => honestAgent(client, stats, n, secret, stop)),
        ...Array.from({ length: o.hostile }, (_, i) => hostileAgent(client, stats, list, i * 3, stop)),
        adminWriter(client, stats, o.adminEveryMs, stop),
      ];
      await new Promise((r) => setTimeout(r, o.minutes * 60_000));
      stopped = true;
      clearInterval(sampler);
      await Promise.all(workers);
      await sample();
      const seconds = (performance.now() - t0) / 1000;
      const kbsExitedEarly = kbs.proc.child.exitCode !== null;
      await kbs.stop();
      for (const n of [...honest, untrusted]) await n.tpm.close();
      const audit = await verifyAudit(join(dir, 'kbs', 'audit.jsonl'));
      return { seconds, stats, rss, peakMiB: peak, audit, kbsExitedEarly };
    } finally {
      await dispatcher.close();
      await kbs.stop();
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** Least-squares slope of RSS over time, in MiB per minute, of the samples from `fromSec` on. */
export function rssSlopeMiBPerMin(samples: readonly RssSample[], fromSec = 0): number {
  const s = samples.filter((x) => x.t >= fromSec);
  if (s.length < 2) return 0;
  const mt = s.reduce((a, x) => a + x.t, 0) / s.length;
  const mr = s.reduce((a, x) => a + x.rssMiB, 0) / s.length;
  const num = s.reduce((a, x) => a + (x.t - mt) * (x.rssMiB - mr), 0);
  const den = s.reduce((a, x) => a + (x.t - mt) ** 2, 0);
  return den === 0 ? 0 : (num / den) * 60;
}
