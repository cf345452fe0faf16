/**
 * Issue 12, defect 1 (unauthenticated memory exhaustion via /auth), against a KBS PROCESS: one client
 * address sends a bounded loop of large `/auth` bodies — extra-params just under the 64 KiB `/auth`
 * cap (accepted: each opens a session) and 1 MiB ones (refused 413 before they are buffered) — with
 * the rate limit off, so nothing but the KBS's own bounds holds memory back. The KBS's RSS must stay
 * under a documented ceiling and it must keep answering. Sessions keep only a nonce, the hash
 * algorithm and the appraiser's small challenge state — never the raw extra-params — so 2400 sessions
 * opened with 60 KiB each (140 MiB of extra-params) cost the KBS a few MiB. The figures are printed.
 */
import { readFile } from 'node:fs/promises';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Pool } from 'undici';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { PROTOCOL_VERSION } from '@keyhold/protocol';
import { startKbsProcess, type KbsProcess } from './harness/kbs-process.js';

/** RSS the KBS may reach during the loop (it starts around 100-130 MiB). Documented in the README. */
const RSS_CEILING_MIB = 256;
/** RSS it may grow by between the warmed-up baseline and the end of the loop. */
const RSS_GROWTH_CEILING_MIB = 64;
const ACCEPTED = 2400;
const REFUSED = 200;
const CONCURRENCY = 16;

let dir: string;
let kbs: KbsProcess;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'keyhold-auth-memory-'));
  kbs = await startKbsProcess({ dataDir: join(dir, 'kbs'), configToml: '[rate_limit]\nenabled = false\n[audit]\nenabled = false\n' });
}, 60_000);

afterAll(async () => {
  await kbs?.stop();
  if (dir !== undefined) await rm(dir, { recursive: true, force: true });
});

async function memoryMiB(pid: number): Promise<{ rss: number; peak: number }> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const kib = (key: string): number => Number(new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? NaN);
  return { rss: kib('VmRSS') / 1024, peak: kib('VmHWM') / 1024 };
}

function body(extraBytes: number, i: number): string {
  return JSON.stringify({ version: PROTOCOL_VERSION, tee: 'tpm', 'extra-params': { [`junk-${i}`]: 'x'.repeat(extraBytes) } });
}

it(`${ACCEPTED} sessions opened with 60 KiB extra-params and ${REFUSED} 1 MiB bodies keep the KBS under ${RSS_CEILING_MIB} MiB RSS, answering`, async () => {
  const pid = kbs.proc.child.pid!;
  const pool = new Pool(kbs.url, { connections: CONCURRENCY, pipelining: 1 });
  const post = async (text: string): Promise<number> => {
    const r = await pool.request({ path: '/kbs/v0/auth', method: 'POST', headers: { 'content-type': 'application/json' }, body: text });
    await r.body.dump();
    return r.statusCode;
  };
  try {
    // Warm up (JIT, pools), then take the baseline.
    for (let i = 0; i < 200; i++) expect(await post(body(1024, i))).toBe(200);
    const base = await memoryMiB(pid);
    const statuses = new Map<number, number>();
    const samples: number[] = [];
    let next = 0;
    const total = ACCEPTED + REFUSED;
    const big = body(1024 * 1024, -1);
    const worker = async (): Promise<void> => {
      while (next < total) {
        const i = next++;
        // Every 13th request is a 1 MiB body (413 before it is buffered), the rest 60 KiB of extra-params.
        const refused = i % 13 === 0 && i / 13 < REFUSED;
        const status = await post(refused ? big : body(60 * 1024, i));
        statuses.set(status, (statuses.get(status) ?? 0) + 1);
        if (i % 200 === 0) samples.push(Math.round((await memoryMiB(pid)).rss));
      }
    };
    const t0 = performance.now();
    await Promise.all(Array.from({ length: CONCURRENCY }, worker));
    const seconds = (performance.now() - t0) / 1000;
    const end = await memoryMiB(pid);
    const health = await pool.request({ path: '/healthz', method: 'GET' });
    const healthText = await health.body.text();
    process.stdout.write(
      [
        `auth-memory: ${total} requests in ${seconds.toFixed(1)} s (${Math.round(total / seconds)}/s, ${CONCURRENCY} connections, rate limit off)`,
        `  statuses ${JSON.stringify(Object.fromEntries(statuses))}`,
        `  KBS RSS MiB: baseline ${base.rss.toFixed(1)}, end ${end.rss.toFixed(1)} (growth ${(end.rss - base.rss).toFixed(1)}), peak ${end.peak.toFixed(1)}; ceiling ${RSS_CEILING_MIB}, growth ceiling ${RSS_GROWTH_CEILING_MIB}`,
        `  RSS samples MiB: ${samples.join(' ')}`,
        '',
      ].join('\n'),
    );
    // Over the cap: 413 PayloadTooLarge, never buffered; under it: a session each.
    expect(statuses.get(413)).toBeGreaterThan(0);
    expect(statuses.get(200)).toBeGreaterThanOrEqual(ACCEPTED - REFUSED);
    expect([...statuses.keys()].every((s) => s === 200 || s === 413)).toBe(true);
    expect(end.peak).toBeLessThan(RSS_CEILING_MIB);
    expect(end.rss - base.rss).toBeLessThan(RSS_GROWTH_CEILING_MIB);
    expect(health.statusCode).toBe(200);
    expect(healthText).toContain('ok');
    expect(kbs.proc.child.exitCode).toBeNull();
  } finally {
    await pool.close();
  }
});

it('a 1 MiB /auth body is refused with 413 PayloadTooLarge naming the /auth limit', async () => {
  const r = await fetch(`${kbs.url}/kbs/v0/auth`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: body(1024 * 1024, 0) });
  expect(r.status).toBe(413);
  expect(await r.json()).toMatchObject({ type: expect.stringMatching(/PayloadTooLarge$/), detail: 'request body exceeds 65536 bytes' });
});
