// The fast path of `get-resource --resource-socket` against the full CLI, on the same command lines
// and the same socket (a real resource socket server with a stand-in fetch): both must exit, print
// and report alike. What the fast path does not handle must be left to the CLI untouched.
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runAgentCli } from '../cli.js';
import { KbsClientError } from '../kbs-client/errors.js';
import { fastArgs, fastGetResource } from './fast-get-resource.js';
import { captureCliOutput } from '../cli-output.test-support.js';
import type { ResourceSocket } from './server.js';
import { startStandInSocket } from './stand-in-socket.test-support.js';

const SECRET = Buffer.from([0, 1, 2, 0xff, 0x0a, 0x0d]);
let standIn: Awaited<ReturnType<typeof startStandInSocket>>;
let socket: ResourceSocket;
let root: string;
beforeAll(async () => {
  standIn = await startStandInSocket(async (r) => {
    if (r.tag === 'missing') throw new KbsClientError('RESOURCE_NOT_FOUND', `/kbs/v0/resource/${r.repository}/${r.type}/${r.tag}: not found (ResourceNotFound)`, { status: 404 });
    if (r.tag === 'denied') throw new KbsClientError('POLICY_DENY', 'denied by the resource policy (PolicyDeny)', { status: 403 });
    return Buffer.from(r.version === 2 ? Buffer.from('v2') : SECRET);
  });
  socket = standIn.socket;
  root = standIn.dir;
});
afterAll(() => standIn.close());

function streams() {
  const c = captureCliOutput();
  return { io: c.io, result: (code: number) => ({ code, stdout: c.out().toString('latin1'), stderr: c.err() }) };
}

async function viaFast(args: string[]) {
  const s = streams();
  const run = fastGetResource(args, s.io);
  if (run === undefined) return undefined;
  return s.result(await run);
}

async function viaCli(args: string[]) {
  const s = streams();
  // The stand-in opener fails: through the socket the CLI must not open a TPM session.
  const code = await runAgentCli(args, s.io, {}, async () => {
    throw new Error('the TPM was opened');
  });
  return s.result(code);
}

describe('get-resource --resource-socket: fast path and CLI', () => {
  it('recognises only the plain forms', () => {
    const S = ['--resource-socket', '/run/k.sock'];
    expect(fastArgs(['get-resource', ...S, 'kbs:///a/b/c'])).toEqual({ socket: '/run/k.sock', resource: { repository: 'a', type: 'b', tag: 'c' }, encoding: 'raw' });
    expect(fastArgs(['get-resource', '--resource-socket=/run/k.sock', '--path', 'a/b/c', '--base64'])?.encoding).toBe('base64');
    expect(fastArgs(['get-resource', 'a/b/c?version=3', ...S])?.resource).toEqual({ repository: 'a', type: 'b', tag: 'c', version: 3 });
    for (const args of [
      ['get-resource', 'a/b/c'],
      ['token', ...S],
      ['get-resource', ...S, 'a/b/c', '--json'],
      ['get-resource', ...S, 'a/b/c', '-o', '/tmp/x'],
      ['get-resource', ...S, 'a/b/c', '--help'],
      ['get-resource', ...S, 'a/b/c', '--url', 'http://x'],
      ['get-resource', ...S, 'a/b/c', '--raw', '--base64'],
      ['get-resource', ...S, 'a/b/c', '--raw', '--raw'],
      ['get-resource', ...S, 'a/b/c', 'd/e/f'],
      ['get-resource', ...S, 'a/b/c', '--path', 'a/b/c'],
      ['get-resource', ...S],
      ['get-resource', ...S, ...S, 'a/b/c'],
      ['get-resource', '--resource-socket', 'a/b/c'],
      ['get-resource', '--resource-socket'],
      ['get-resource', '--resource-socket=', 'a/b/c'],
      ['get-resource', ...S, 'a/../c'],
      ['get-resource', ...S, '--', 'a/b/c'],
    ]) {
      expect(fastArgs(args), args.join(' ')).toBeUndefined();
    }
  });

  it('prints, fails and exits as the CLI does', async () => {
    const S = ['--resource-socket', socket.path];
    const lines = [
      ['get-resource', ...S, 'kbs:///default/key/k1'],
      ['get-resource', ...S, 'default/key/k1', '--base64'],
      ['get-resource', `--resource-socket=${socket.path}`, '--path', '/default/key/k1', '--raw'],
      ['get-resource', ...S, 'kbs:///default/key/k1?version=2'],
      ['get-resource', ...S, 'default/key/missing'],
      ['get-resource', ...S, 'default/key/denied'],
      ['get-resource', '--resource-socket', join(root, 'absent.sock'), 'default/key/k1'],
    ];
    const expected = [
      [0, SECRET.toString('latin1')],
      [0, `${SECRET.toString('base64')}\n`],
      [0, SECRET.toString('latin1')],
      [0, 'v2'],
      [4, ''],
      [3, ''],
      [1, ''],
    ];
    for (const [i, args] of lines.entries()) {
      const fast = await viaFast(args);
      const cli = await viaCli(args);
      expect(fast, args.join(' ')).toEqual(cli);
      expect([cli.code, cli.stdout], args.join(' ')).toEqual(expected[i]);
    }
    const missing = await viaCli(lines[4] as string[]);
    expect(missing.stderr).toBe('keyhold-agent get-resource: RESOURCE_NOT_FOUND: /kbs/v0/resource/default/key/missing: not found (ResourceNotFound)\n');
    expect((await viaCli(lines[6] as string[])).stderr).toMatch(/AGENT_UNREACHABLE: .*absent\.sock: no keyhold-agent run is serving it \(ENOENT\)\n  hint: /);
  });

  it('leaves the rest to the CLI, which goes through the socket too (--json, -o)', async () => {
    const args = ['get-resource', '--resource-socket', socket.path, 'default/key/missing', '--json'];
    expect(await viaFast(args)).toBeUndefined();
    const cli = await viaCli(args);
    expect(cli.code).toBe(4);
    expect(JSON.parse(cli.stderr)).toMatchObject({ error: { code: 'RESOURCE_NOT_FOUND', exit: 4 } });
    const file = join(root, 'out.bin');
    const written = await viaCli(['get-resource', '--resource-socket', socket.path, 'default/key/k1', '-o', file]);
    expect(written.code).toBe(0);
    const { readFile, stat } = await import('node:fs/promises');
    expect(await readFile(file)).toEqual(SECRET);
    expect((await stat(file)).mode & 0o777).toBe(0o600);
  });
});
