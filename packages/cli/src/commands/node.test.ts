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
    reply = (s) => (s.url.startsWith('/kbs/v0/admin/nodes?') ? { status: 200, body: { nodes: [{ nodeId: h, akName: '000b' + 'aa'.repeat(32), enrolledAt: '2026-01-01T00:00:00.000Z', revoked: true }] } } : { status: 200, body: { ekHashes: [h, 'b'.repeat(64)] } });
    const list = await cli(['list']);
    expect(list.code).toBe(0);
    expect(list.stdout).toContain(`${h}  REVOKED`);
    expect(list.stdout).toContain(`${'b'.repeat(64)}  not enrolled  allowlisted`);
    expect(seen.map((s) => `${s.method} ${s.url}`)).toEqual([
      `DELETE /kbs/v0/admin/ek-allowlist/${h}`,
      `POST /kbs/v0/admin/nodes/${h}/revoke`,
      `DELETE /kbs/v0/admin/nodes/${h}`,
      'GET /kbs/v0/admin/nodes?limit=500',
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

  it('list reads every page (the next cursor) and shows a node revoked before it enrolled without since=undefined', async () => {
    const ids = Array.from({ length: 5 }, (_, i) => String(i + 1).repeat(64));
    reply = (r) => {
      if (r.url.startsWith('/kbs/v0/admin/ek-allowlist')) return { status: 200, body: { ekHashes: [] } };
      const after = new URL(r.url, 'http://x').searchParams.get('after');
      const start = after === null ? 0 : ids.indexOf(after) + 1;
      const page = ids.slice(start, start + 2).map((nodeId) => ({ nodeId, akName: null, firstSeenAt: '2026-01-02T00:00:00.000Z', state: 'revoked', revoked: true }));
      return { status: 200, body: { nodes: page, ...(start + 2 < ids.length ? { next: page.at(-1)?.nodeId } : {}) } };
    };
    const list = await cli(['list']);
    expect(list.code, list.stderr).toBe(0);
    expect(list.stdout.trim().split('\n')).toHaveLength(5);
    expect(list.stdout).not.toContain('undefined');
    expect(list.stdout).toContain(`${ids[4]}  REVOKED                ak=-  since=2026-01-02T00:00:00.000Z`);
    expect(seen.filter((r) => r.url.startsWith('/kbs/v0/admin/nodes')).map((r) => r.url)).toEqual([
      '/kbs/v0/admin/nodes?limit=500',
      `/kbs/v0/admin/nodes?limit=500&after=${ids[1]}`,
      `/kbs/v0/admin/nodes?limit=500&after=${ids[3]}`,
    ]);
  });

  it('stops on a page cursor that does not move forward instead of looping', async () => {
    reply = () => ({ status: 200, body: { nodes: [{ nodeId: h, akName: null, state: 'active' }], next: h } });
    const first = await cli(['status']);
    // The first page's cursor is taken; the second answers the same cursor again.
    expect(first.code).toBe(1);
    expect(first.stderr).toMatch(/bad page cursor/);
    expect(seen.length).toBe(2);
    reply = () => ({ status: 200, body: { nodes: [], next: '../x' } });
    expect((await cli(['status'])).stderr).toMatch(/bad page cursor/);
  });

  const banned = {
    nodeId: h,
    ekHash: h,
    akName: '000b' + 'aa'.repeat(32),
    firstSeenAt: '2026-01-01T00:00:00.000Z',
    lastAttestedAt: '2026-01-01T00:10:00.000Z',
    lastVerdict: { status: 'contraindicated', policy: 'default@3', reason: 'PCR 10 does not match tpm_pcr10', at: '2026-01-01T00:11:00.000Z' },
    state: 'banned',
    banned: { at: '2026-01-01T00:11:00.000Z', reason: 'PCR 10 does not match tpm_pcr10' },
    certificates: [{ serial: '0a', notAfter: '2026-01-01T01:00:00.000Z' }],
    spiffeId: `spiffe://e2e.test/keyhold/node/tpm/${h}`,
    version: 7,
  };

  it('status shows every node as a table, --state filters, --json passes the records through', async () => {
    const ak = `ak:${'c'.repeat(64)}`;
    reply = () => ({ status: 200, body: { nodes: [banned, { nodeId: ak, akName: null, state: 'active', lastVerdict: { status: 'affirming', at: '2026-01-01T00:12:00.000Z' } }] } });
    const r = await cli(['status']);
    expect(r.code, r.stderr).toBe(0);
    const [head, row1, row2] = r.stdout.trim().split('\n');
    expect(head).toMatch(/^NODE\s+STATE\s+VERDICT\s+AT\s+REASON\s+SPIFFE ID\s+CERT EXPIRES$/);
    expect(row1).toMatch(new RegExp(`^${h}\\s+banned\\s+contraindicated\\s+2026-01-01T00:11:00.000Z\\s+PCR 10 does not match tpm_pcr10\\s+spiffe://e2e.test/keyhold/node/tpm/${h}\\s+2026-01-01T01:00:00.000Z$`));
    expect(row2).toMatch(new RegExp(`^${ak}\\s+active\\s+affirming\\s+2026-01-01T00:12:00.000Z\\s+-\\s+-\\s+-$`));
    seen.length = 0;
    expect(JSON.parse((await cli(['status', '--json', '--state', 'banned'])).stdout).nodes[0].version).toBe(7);
    expect(seen[0]?.url).toBe('/kbs/v0/admin/nodes?limit=500&state=banned');
    expect((await cli(['status', '--state', 'sleepy'])).code).toBe(2);
  });

  it('status NODE_ID shows the node and its history; ak: ids are accepted', async () => {
    reply = () => ({ status: 200, body: { node: banned, history: [{ at: '2026-01-01T00:11:00.000Z', kind: 'attest', status: 'contraindicated', policy: 'default@3', reason: 'PCR 10 does not match tpm_pcr10' }, { at: '2026-01-01T00:10:30.000Z', kind: 'release', resource: 'default/key/k1' }] } });
    const r = await cli(['status', h.toUpperCase()]);
    expect(r.code, r.stderr).toBe(0);
    expect(seen[0]?.url).toBe(`/kbs/v0/admin/nodes/${h}`);
    expect(r.stdout).toContain('state:         banned');
    expect(r.stdout).toContain('banned:        2026-01-01T00:11:00.000Z: PCR 10 does not match tpm_pcr10');
    expect(r.stdout).toContain('certificate:   serial 0a, expires 2026-01-01T01:00:00.000Z');
    expect(r.stdout).toContain('history (2, newest first):');
    expect(r.stdout).toMatch(/2026-01-01T00:10:30.000Z  release  -\s+default\/key\/k1/);
    expect(JSON.parse((await cli(['status', h, '--json'])).stdout).history).toHaveLength(2);
    await cli(['status', `ak:${'c'.repeat(64)}`]);
    expect(seen.at(-1)?.url).toBe(`/kbs/v0/admin/nodes/ak:${'c'.repeat(64)}`);
    expect((await cli(['status', h, '--state', 'banned'])).code).toBe(2);
  });

  it('unban posts to the node and prints its new state; bad ids never reach the KBS', async () => {
    reply = () => ({ status: 200, body: { ...banned, state: 'active', banned: undefined } });
    const r = await cli(['unban', h]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toBe(`unbanned ${h} (state active)\n`);
    expect(seen.map((x) => `${x.method} ${x.url} ${x.auth}`)).toEqual([`POST /kbs/v0/admin/nodes/${h}/unban Bearer admin.jwt.value`]);
    seen.length = 0;
    for (const bad of ['../../admin', `ak:${h}x`, 'ak:', `AK-${h}`]) expect((await cli(['unban', bad])).code, bad).toBe(2);
    expect(seen).toHaveLength(0);
    reply = () => ({ status: 403, body: { type: 'https://github.com/confidential-containers/kbs/errors/AdminAuthAccess', detail: 'role may not unban' } });
    expect((await cli(['unban', h])).code).toBe(3);
  });
});
