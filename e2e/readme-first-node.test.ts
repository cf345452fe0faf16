/**
 * README "First node by hand", run as written: the section's fenced `sh` blocks are extracted from
 * README.md and run in order by bash (errexit, pipefail) in an empty directory, with keyhold,
 * keyhold-kbs and keyhold-agent on PATH (links to this checkout's built bins, as scripts/setup.sh
 * makes them), once for each of the three ways to trust the node (blocks 4a, 4b, 4c). The KBS and
 * swtpm the blocks start in the background are stopped by the last block, or by PID here.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, symlink } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '@keyhold/test-harness';
import { AGENT_BIN, CLI_BIN, KBS_BIN, REPO_ROOT } from './harness/repo.js';

interface Block {
  /** The step label of the block's first line: "1", "2", "4a", ... */
  step: string;
  text: string;
}

/** The fenced sh blocks of one README section, in order. */
function sectionBlocks(readme: string, heading: string): Block[] {
  const start = readme.indexOf(`\n## ${heading}\n`);
  if (start < 0) throw new Error(`README has no "## ${heading}" section`);
  const end = readme.indexOf('\n## ', start + 1);
  const section = readme.slice(start, end < 0 ? undefined : end);
  return [...section.matchAll(/```sh\n([\s\S]*?)```/g)].map((m) => {
    const text = m[1] as string;
    const step = /^# (\d+[a-z]?)\. /.exec(text)?.[1];
    if (step === undefined) throw new Error(`a block of "${heading}" does not start with "# N. ...":\n${text}`);
    return { step, text };
  });
}

let dir: string;
let binDir: string;
let blocks: Block[];

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'keyhold-readme-'));
  binDir = join(dir, 'bin');
  await mkdir(binDir);
  // What scripts/setup.sh does, into a private directory (not /usr/local/bin) for the test.
  for (const [name, target] of [['keyhold', CLI_BIN], ['keyhold-kbs', KBS_BIN], ['keyhold-agent', AGENT_BIN]] as const) await symlink(target, join(binDir, name));
  blocks = sectionBlocks(await readFile(join(REPO_ROOT, 'README.md'), 'utf8'), 'First node by hand');
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

function portIsFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createServer();
    s.once('error', () => resolve(false));
    s.listen(port, '127.0.0.1', () => s.close(() => resolve(true)));
  });
}

/** A free port whose successor is free too (swtpm's control channel is the next port). */
async function portPair(): Promise<number> {
  for (let i = 0; i < 50; i++) {
    const p = await freePort();
    if (p < 65535 && (await portIsFree(p + 1))) return p;
  }
  throw new Error('no two consecutive free ports');
}

/** Stop what a script left running, by the PIDs its blocks wrote (kbs.pid, swtpm.pid). */
async function stopLeftovers(work: string): Promise<void> {
  for (const f of ['kbs.pid', 'swtpm.pid']) {
    const file = join(work, f);
    if (!existsSync(file)) continue;
    const pid = Number((await readFile(file, 'utf8')).trim());
    if (!Number.isInteger(pid) || pid <= 1) continue;
    try {
      process.kill(pid, 'SIGTERM');
    } catch {
      continue; // already gone
    }
    for (let i = 0; i < 50; i++) {
      try {
        process.kill(pid, 0);
      } catch {
        break;
      }
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}

async function runScript(script: string, work: string): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const env: NodeJS.ProcessEnv = { PATH: `${binDir}:${process.env['PATH'] ?? '/usr/bin:/bin'}`, HOME: work, KBS_PORT: String(await freePort()), SWTPM_PORT: String(await portPair()) };
  return new Promise((resolve, reject) => {
    const child = spawn('bash', ['-euo', 'pipefail', '-c', script], { cwd: work, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (b: Buffer) => (stdout += b.toString()));
    child.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), 100_000);
    child.on('error', reject);
    // 'exit', not 'close': a background process the script left behind may still hold the pipes.
    child.on('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

describe('README: First node by hand', () => {
  it('has the numbered blocks, using the commands by name', () => {
    expect(blocks.map((b) => b.step)).toEqual(['1', '2', '3', '4a', '4b', '4c', '5', '6', '7']);
    for (const b of blocks) expect(b.text).not.toMatch(/pnpm exec|node packages\/|bin\/keyhold/);
    const all = blocks.map((b) => b.text).join('\n');
    for (const cmd of ['keyhold token issue', 'keyhold-kbs serve', 'swtpm socket', 'keyhold config set-reference-value --name trusted_ak', 'keyhold ca add', 'keyhold node allow', 'keyhold config set-resource', 'keyhold-agent get-resource']) {
      expect(all).toContain(cmd);
    }
  });

  it.each(['4a', '4b', '4c'])('runs as written, trusting the node with block %s', async (way) => {
    const work = join(dir, `way-${way}`);
    await mkdir(work);
    const chosen = blocks.filter((b) => !/^4[a-z]$/.test(b.step) || b.step === way);
    try {
      const r = await runScript(chosen.map((b) => b.text).join('\n'), work);
      const kbsLog = existsSync(join(work, 'kbs.log')) ? await readFile(join(work, 'kbs.log'), 'utf8') : '';
      expect(r.code, `stderr:\n${r.stderr}\nkbs.log (tail):\n${kbsLog.slice(-2000)}`).toBe(0);
      expect(r.stdout).toContain('the node got the secret');
      const secret = await readFile(join(work, 'secret.txt'));
      expect(r.stdout.trim().split('\n')).toContain(secret.toString('base64'));
      // Block 7 stopped both background processes.
      for (const f of ['kbs.pid', 'swtpm.pid']) {
        const pid = Number((await readFile(join(work, f), 'utf8')).trim());
        let alive = true;
        for (let i = 0; i < 50 && alive; i++) {
          try {
            process.kill(pid, 0);
            await new Promise((res) => setTimeout(res, 100));
          } catch {
            alive = false;
          }
        }
        expect(alive, `${f} ${pid} still running`).toBe(false);
      }
    } finally {
      await stopLeftovers(work);
    }
  });
});
