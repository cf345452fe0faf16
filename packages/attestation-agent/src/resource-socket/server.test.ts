// The daemon's resource socket with a stand-in fetch (the real one — CycleSession with a KBS and a
// TPM — is covered by cycle-session.test.ts and e2e/resident-agent.test.ts), talked to by the real
// client and by node:http for what the client never sends.
import { spawnSync } from 'node:child_process';
import { chmod, lstat, mkdir, mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { AgentError } from '../errors.js';
import { KbsClientError } from '../kbs-client/errors.js';
import { fetchFromResourceSocket } from './client.js';
import { socketFailure } from './stand-in-socket.test-support.js';
import { startResourceSocket, type ResourceSocketOptions } from './server.js';
import type { SocketResource } from './wire.js';

const root = await mkdtemp(join(tmpdir(), 'kh-rss-'));
afterAll(() => rm(root, { recursive: true, force: true }));
let n = 0;
const R = { repository: 'default', type: 'key', tag: 'k1' };
const SECRET = 'the-secret-value-1234';

function logSink() {
  const lines: string[] = [];
  return { lines, log: { info: (o: object, m: string) => lines.push(`${m} ${JSON.stringify(o)}`), warn: (o: object, m: string) => lines.push(`${m} ${JSON.stringify(o)}`) } };
}

async function serve(fetch: ResourceSocketOptions['fetch'], extra: Partial<ResourceSocketOptions> = {}) {
  const dir = join(root, `d${n++}`);
  await mkdir(dir, { mode: 0o700 });
  const { lines, log } = logSink();
  const socket = await startResourceSocket({ path: join(dir, 'agent.sock'), fetch, log, ...extra });
  return { socket, lines, dir };
}

/** A raw request through node:http: status, headers and body. */
function call(socketPath: string, method: string, path: string): Promise<{ status: number; headers: Record<string, unknown>; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ socketPath, method, path }, (res) => {
      let body = '';
      res.on('data', (d: Buffer) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.on('error', reject);
    req.end();
  });
}


describe('resource socket server', () => {
  it('serves the fetched secret on a 0600 socket, zeroes it after sending, logs the name only', async () => {
    const asked: SocketResource[] = [];
    const handed: Uint8Array[] = [];
    const { socket, lines } = await serve(async (r) => {
      asked.push(r);
      const b = new Uint8Array(Buffer.from(SECRET));
      handed.push(b);
      return b;
    });
    try {
      expect(((await lstat(socket.path)).mode & 0o777).toString(8)).toBe('600');
      expect((await fetchFromResourceSocket(socket.path, R)).toString()).toBe(SECRET);
      expect((await fetchFromResourceSocket(socket.path, { ...R, version: 2 })).toString()).toBe(SECRET);
      expect(asked).toEqual([R, { ...R, version: 2 }]);
      for (const b of handed) expect(b.every((x) => x === 0)).toBe(true);
      const answer = await call(socket.path, 'GET', '/cdh/resource/default/key/k1');
      expect(answer.headers['content-type']).toBe('application/octet-stream');
      expect(answer.headers['cache-control']).toBe('no-store');
      expect(lines.join('\n')).toContain('resource served');
      expect(lines.join('\n')).toContain('default/key/k1');
      expect(lines.join('\n')).not.toContain(SECRET);
    } finally {
      await socket.close();
    }
    await expect(lstat(socket.path)).rejects.toThrow(/ENOENT/);
  });

  it('answers the KBS refusal with its status and code, and an unexpected error without its text', async () => {
    const errors: Record<string, unknown> = {
      missing: new KbsClientError('RESOURCE_NOT_FOUND', '/kbs/v0/resource/default/key/missing: no such resource (ResourceNotFound)', { status: 404 }),
      denied: new KbsClientError('POLICY_DENY', 'denied by policy (PolicyDeny)', { status: 403 }),
      banned: new KbsClientError('UNAUTHORIZED', 'node banned (NodeBanned)', { status: 401 }),
      down: new KbsClientError('KBS_UNREACHABLE', 'connect ECONNREFUSED'),
      tpm: new AgentError('TPM_UNAVAILABLE', 'cannot open the TPM'),
      bug: new Error('internal detail /var/lib/secret-path'),
    };
    const { socket, lines } = await serve(async (r) => {
      throw errors[r.tag];
    });
    try {
      const want: Record<string, [string, number, number]> = {
        missing: ['RESOURCE_NOT_FOUND', 404, 4],
        denied: ['POLICY_DENY', 403, 3],
        banned: ['UNAUTHORIZED', 401, 3],
        down: ['KBS_UNREACHABLE', 502, 1],
        tpm: ['TPM_UNAVAILABLE', 503, 1],
        bug: ['INTERNAL', 500, 1],
      };
      for (const [tag, [code, status, exit]] of Object.entries(want)) {
        const err = await socketFailure(fetchFromResourceSocket(socket.path, { ...R, tag }));
        expect([err.code, err.status, err.exitCode], tag).toEqual([code, status, exit]);
      }
      const bug = await call(socket.path, 'GET', '/cdh/resource/default/key/bug');
      // SECURITY: an unexpected error's text (paths, internals) stays in the daemon's log, not in the answer.
      expect(bug.body).not.toContain('secret-path');
      expect(JSON.parse(bug.body)).toEqual({ type: 'https://keyhold.dev/agent/errors/INTERNAL', detail: expect.any(String) });
      expect(lines.join('\n')).toContain('secret-path');
    } finally {
      await socket.close();
    }
  });

  it('serves only GET /cdh/resource/REPO/TYPE/TAG: other routes 404, other methods 405, bad paths 400 without fetching', async () => {
    let fetched = 0;
    const { socket } = await serve(async () => {
      fetched++;
      return new Uint8Array(1);
    });
    try {
      expect((await call(socket.path, 'GET', '/kbs/v0/resource/default/key/k1')).status).toBe(404);
      const post = await call(socket.path, 'POST', '/cdh/resource/default/key/k1');
      expect([post.status, post.headers['allow']]).toEqual([405, 'GET']);
      for (const bad of ['/cdh/resource/default/../k1', '/cdh/resource/a/%2e%2e/b', '/cdh/resource/a/b/c/d', '/cdh/resource/a/b/c?version=x']) {
        const r = await call(socket.path, 'GET', bad);
        expect([r.status, JSON.parse(r.body).type], bad).toEqual([400, 'https://keyhold.dev/agent/errors/RESOURCE_PATH_INVALID']);
      }
      expect(fetched).toBe(0);
    } finally {
      await socket.close();
    }
  });

  it('answers 503 at once beyond the requests in flight it allows', async () => {
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const { socket } = await serve(
      async () => {
        await gate;
        return new Uint8Array(Buffer.from('x'));
      },
      { maxInFlight: 2 },
    );
    try {
      const held = [fetchFromResourceSocket(socket.path, R), fetchFromResourceSocket(socket.path, R)];
      await new Promise((r) => setTimeout(r, 100));
      // SECURITY: requests in flight are bounded: a local flood is answered 503 at once instead of queueing TPM and KBS work without limit.
      const busy = await call(socket.path, 'GET', '/cdh/resource/default/key/k1');
      expect([busy.status, busy.headers['retry-after'], JSON.parse(busy.body).type]).toEqual([503, '1', 'https://keyhold.dev/agent/errors/AGENT_BUSY']);
      release();
      for (const b of await Promise.all(held)) expect(b.toString()).toBe('x');
    } finally {
      await socket.close();
    }
  });

  it('answers 504 at its deadline; the late fetch still counts as in flight, and its secret is zeroed', async () => {
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const late = new Uint8Array(Buffer.from(SECRET));
    const { socket } = await serve(
      async () => {
        await gate;
        return late;
      },
      { maxInFlight: 1, answerTimeoutMs: 150 },
    );
    try {
      const slow = await call(socket.path, 'GET', '/cdh/resource/default/key/k1');
      expect([slow.status, JSON.parse(slow.body).type]).toEqual([504, 'https://keyhold.dev/agent/errors/AGENT_TIMEOUT']);
      expect((await call(socket.path, 'GET', '/cdh/resource/default/key/k1')).status).toBe(503);
      release();
      await new Promise((r) => setTimeout(r, 20));
      expect(late.every((x) => x === 0)).toBe(true);
      expect((await call(socket.path, 'GET', '/cdh/resource/default/key/k1')).status).toBe(200);
    } finally {
      await socket.close();
    }
  });

  it('replaces a stale socket, but not a live one, a file, or a symlink', async () => {
    const fetch = async () => new Uint8Array(1);
    const dir = join(root, `p${n++}`);
    await mkdir(dir, { mode: 0o700 });
    const { log } = logSink();
    const path = join(dir, 'agent.sock');
    const first = await startResourceSocket({ path, fetch, log });
    // SECURITY: only a socket is ever removed at the path: a mistyped --resource-socket never deletes a file (or follows a symlink to one).
    await expect(startResourceSocket({ path, fetch, log })).rejects.toThrow(/another process is serving it/);
    await first.close();

    // A stale socket left by a killed daemon: a socket file nobody listens on.
    const staleSocket = join(dir, 'stale.sock');
    spawnSync(process.execPath, ['-e', `require('node:net').createServer().listen(${JSON.stringify(staleSocket)}, () => process.kill(process.pid, 'SIGKILL'))`]);
    expect((await lstat(staleSocket)).isSocket()).toBe(true);
    const again = await startResourceSocket({ path: staleSocket, fetch, log });
    expect((await fetchFromResourceSocket(again.path, R)).length).toBe(1);
    await again.close();

    const file = join(dir, 'file');
    await writeFile(file, 'precious');
    await expect(startResourceSocket({ path: file, fetch, log })).rejects.toMatchObject({ code: 'RESOURCE_SOCKET', message: expect.stringMatching(/not a socket/) });
    const link = join(dir, 'link.sock');
    await symlink(file, link);
    await expect(startResourceSocket({ path: link, fetch, log })).rejects.toMatchObject({ code: 'RESOURCE_SOCKET', message: expect.stringMatching(/not a socket/) });
    expect(await readFile(file, 'utf8')).toBe('precious');
    expect((await lstat(link)).isSymbolicLink()).toBe(true);
  });

  it('refuses a directory other users can write (without the sticky bit)', async () => {
    const dir = join(root, `w${n++}`);
    await mkdir(dir);
    await chmod(dir, 0o777);
    const { log } = logSink();
    // SECURITY: in a directory other users can write (without the sticky bit), one of them could replace the socket with their own and serve forged secrets to this node's workloads.
    await expect(startResourceSocket({ path: join(dir, 'agent.sock'), fetch: async () => new Uint8Array(1), log })).rejects.toMatchObject({ code: 'RESOURCE_SOCKET', message: expect.stringMatching(/writable by other users/) });
    await chmod(dir, 0o1777);
    const sticky = await startResourceSocket({ path: join(dir, 'agent.sock'), fetch: async () => new Uint8Array(1), log });
    await sticky.close();
  });
});
