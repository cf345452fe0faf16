// `keyhold node` against a local HTTP server standing in for the KBS admin API (the real routes
// are wired by the KBS; this checks the requests the CLI sends and how it renders answers).
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { CommandIo } from '../command.js';
import { runKeyhold } from '../program.js';

/** `keyhold node ...` in process, with an empty environment. */
const run = (argv: string[], io: CommandIo, now?: () => Date): Promise<number> => runKeyhold([...['node'], ...argv], io, {}, now !== undefined ? { now } : {});

class Capture extends Writable {
  text = '';
  override _write(chunk: Buffer | string, _enc: BufferEncoding, cb: () => void): void {
    this.text += chunk.toString();
    cb();
  }
}

interface Seen { method: string; url: string; auth: string | undefined; type: string | undefined; body: string }
const seen: Seen[] = [];
let reply: (req: Seen) => { status: number; body?: unknown } = () => ({ status: 200, body: {} });
let server: Server;
let url = '';
let dir = '';
let tokenFile = '';
const repoRoot = fileURLToPath(new URL('../../../../', import.meta.url));
const ekPem = path.resolve(repoRoot, '../shared/corpus/quotes/keylime-checkquote/ekpub.pem');

const readBody = (req: IncomingMessage): Promise<string> =>
  new Promise((resolve) => {
    let b = '';
    req.on('data', (c: Buffer) => (b += c.toString()));
    req.on('end', () => resolve(b));
  });

beforeAll(async () => {
  server = createServer((req, res) => {
    void readBody(req).then((body) => {
      const s: Seen = { method: req.method ?? '', url: req.url ?? '', auth: req.headers.authorization, type: req.headers['content-type'], body };
      seen.push(s);
      const r = reply(s);
      res.writeHead(r.status, { 'content-type': 'application/json' });
      res.end(r.body === undefined ? '' : JSON.stringify(r.body));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const addr = server.address();
  url = `http://127.0.0.1:${typeof addr === 'object' && addr ? addr.port : 0}`;
  dir = mkdtempSync(path.join(tmpdir(), 'keyhold-node-cli-'));
  tokenFile = path.join(dir, 'token');
  writeFileSync(tokenFile, 'admin.jwt.value\n');
});
afterAll(async () => {
  await new Promise((r) => server.close(r));
  rmSync(dir, { recursive: true, force: true });
});
beforeEach(() => {
  seen.length = 0;
  reply = () => ({ status: 200, body: {} });
});

async function cli(argv: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const stdout = new Capture();
  const stderr = new Capture();
  const code = await run(['--url', url, '--admin-token-file', tokenFile, ...argv], { stdout, stderr });
  return { code, stdout: stdout.text, stderr: stderr.text };
}

const h = createHash('sha256').update('ek').digest('hex');

describe('keyhold node', () => {
  it('allow posts the hash (lower-cased) and note with the admin token', async () => {
    expect((await cli(['allow', h.toUpperCase(), '--note', 'rack 4'])).code).toBe(0);
    expect(seen).toEqual([{ method: 'POST', url: '/kbs/v0/admin/ek-allowlist', auth: 'Bearer admin.jwt.value', type: 'application/json', body: JSON.stringify({ ekHash: h, note: 'rack 4' }) }]);
  });

  it.skipIf(!existsSync(ekPem))('allow --ek-pub computes the hash from a key file', async () => {
    expect((await cli(['allow', '--ek-pub', ekPem])).code).toBe(0);
    expect(JSON.parse(seen[0]?.body ?? '{}').ekHash).toMatch(/^[0-9a-f]{64}$/);
  });

  it('disallow, revoke and list call their endpoints', async () => {
    expect((await cli(['disallow', h])).code).toBe(0);
    expect((await cli(['revoke', h])).code).toBe(0);
    expect((await cli(['remove', h])).code).toBe(0);
    reply = (s) => (s.url.endsWith('/nodes') ? { status: 200, body: { nodes: [{ nodeId: h, akName: '000b' + 'aa'.repeat(32), enrolledAt: '2026-01-01T00:00:00.000Z', revoked: true }] } } : { status: 200, body: { ekHashes: [h, 'b'.repeat(64)] } });
    const list = await cli(['list']);
    expect(list.code).toBe(0);
    expect(list.stdout).toContain(`${h}  REVOKED`);
    expect(list.stdout).toContain(`${'b'.repeat(64)}  not enrolled  allowlisted`);
    expect(seen.map((s) => `${s.method} ${s.url}`)).toEqual([
      `DELETE /kbs/v0/admin/ek-allowlist/${h}`,
      `POST /kbs/v0/admin/nodes/${h}/revoke`,
      `DELETE /kbs/v0/admin/nodes/${h}`,
      'GET /kbs/v0/admin/nodes',
      'GET /kbs/v0/admin/ek-allowlist',
    ]);
    const json = await cli(['list', '--json']);
    expect(JSON.parse(json.stdout).allowlist).toHaveLength(2);
  });

  it('refuses malformed hashes locally (exit 2, nothing sent) and reports KBS refusals (exit 3)', async () => {
    expect((await cli(['allow', '../etc'])).code).toBe(2);
    expect((await cli(['revoke', 'abc'])).code).toBe(2);
    expect((await cli(['frobnicate'])).code).toBe(2);
    expect(seen).toHaveLength(0);
    reply = () => ({ status: 403, body: { type: 'https://github.com/confidential-containers/kbs/errors/AdminForbidden', detail: 'role may not' } });
    const r = await cli(['revoke', h]);
    expect(r.code).toBe(3);
    expect(r.stderr).toContain('HTTP 403');
  });
});
