import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startResourceSocket, type ResourceSocket } from '../resource-socket/server.js';

/** The compiled entry (what the bundle is made from); the bin loader would take the socket fast path's own bundle. */
const ENTRY = resolve(fileURLToPath(import.meta.url), '..', '..', '..', 'dist', 'bin', 'keyhold-agent.js');
const built = existsSync(ENTRY);
if (!built) console.warn(`skipping bin/keyhold-agent tests: ${ENTRY} is not built (pnpm run build)`);

/** Run the entry with stdout read only after `readAfterMs` (a slow reader: the pipe fills up first). */
function runSlowReader(args: string[], readAfterMs: number): Promise<{ code: number | null; stdout: Buffer; stderr: string }> {
  return new Promise((done, fail) => {
    const child = spawn(process.execPath, [ENTRY, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    let stderr = '';
    child.stdout.pause();
    setTimeout(() => {
      child.stdout.on('data', (d: Buffer) => out.push(d));
      child.stdout.resume();
    }, readAfterMs);
    child.stderr.on('data', (d: Buffer) => (stderr += d));
    child.on('error', fail);
    child.on('close', (code) => done({ code, stdout: Buffer.concat(out), stderr }));
  });
}

describe.runIf(built)('keyhold-agent entry: exit once the output is written', () => {
  let dir: string;
  let socket: ResourceSocket;
  // Several times a pipe's buffer (64 KiB), so the writes cannot all complete before the reader reads.
  const secret = randomBytes(3 * 1024 * 1024);

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'keyhold-agent-exit-'));
    const log = { info: () => undefined, warn: () => undefined };
    socket = await startResourceSocket({ path: join(dir, 'agent.sock'), log, fetch: async () => new Uint8Array(secret) });
  });
  afterAll(async () => {
    await socket?.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('exits 0 with every byte of a large secret delivered to a slow reader (raw and base64)', async () => {
    const raw = await runSlowReader(['get-resource', '--resource-socket', socket.path, 'kbs:///default/key/big'], 300);
    expect(raw.stderr).toBe('');
    expect(raw.code).toBe(0);
    expect(raw.stdout.equals(secret)).toBe(true);
    const b64 = await runSlowReader(['get-resource', '--base64', '--resource-socket', socket.path, 'kbs:///default/key/big'], 300);
    expect(b64.code).toBe(0);
    expect(b64.stdout.toString()).toBe(`${secret.toString('base64')}\n`);
  });

  it('exits with the failure code and the error line written when the command fails', async () => {
    const r = await runSlowReader(['get-resource', '--resource-socket', join(dir, 'nothing-here.sock'), 'kbs:///default/key/big'], 100);
    expect(r.code).toBe(1);
    expect(r.stdout.length).toBe(0);
    expect(r.stderr).toMatch(/^keyhold-agent get-resource: AGENT_UNREACHABLE: /m);
  });
});
