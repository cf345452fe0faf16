import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort, spawnProcess, waitForPort, type SpawnedProcess } from '@keyhold/test-harness';
import { formatAuditLine, nextAuditRecord, type AuditRecord } from '@keyhold/audit';
import type { CommandIo } from '../command.js';
import { runKeyhold } from '../program.js';

/** `keyhold audit ...` in process, with an empty environment. */
const run = (argv: string[], io: CommandIo, now?: () => Date): Promise<number> => runKeyhold([...['audit'], ...argv], io, {}, now !== undefined ? { now } : {});

class Capture extends Writable {
  text = '';
  override _write(chunk: Buffer, _enc: string, cb: () => void): void {
    this.text += chunk.toString();
    cb();
  }
}
const NOW = new Date('2026-11-27T13:00:00Z');
async function cli(argv: string[]) {
  const stdout = new Capture();
  const stderr = new Capture();
  const code = await run(argv, { stdout, stderr }, () => NOW);
  return { code, stdout: stdout.text, stderr: stderr.text };
}

let dir: string;
const f = (n: string) => path.join(dir, n);

beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'keyhold-audit-cli-'));
  const rs: AuditRecord[] = [];
  const add = (kind: AuditRecord['kind'], fields: AuditRecord['fields'], minute: number) => rs.push(nextAuditRecord(rs.at(-1), kind, fields, new Date(Date.UTC(2026, 10, 27, 12, minute))));
  add('attest', { node: 'n1', verdict: 'affirming', policyId: 'default', policyVersion: 0 }, 0);
  add('release', { node: 'n1', resourcePath: 'a/key/1', verdict: 'allow' }, 10);
  add('deny', { node: 'n2', resourcePath: 'b/key/1', reason: 'policy rule evaluated to false' }, 20);
  add('admin', { actor: 'alice', action: 'resource.put', resourcePath: 'a/key/2' }, 30);
  add('release', { node: 'n2', resourcePath: 'a/key/2', verdict: 'allow' }, 40);
  const lines = rs.map(formatAuditLine);
  await writeFile(f('good.jsonl'), lines.join(''));
  await writeFile(f('edited.jsonl'), [lines[0], lines[1], lines[2]!.replace('"n2"', '"n9"'), lines[3], lines[4]].join(''));
  await writeFile(f('torn.jsonl'), lines.join('') + lines[0]!.slice(0, 30));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('keyhold audit', () => {
  it('lists records, filtered by node and since', async () => {
    const all = await cli(['--file', f('good.jsonl')]);
    expect(all.code).toBe(0);
    expect(all.stdout.trim().split('\n')).toHaveLength(5);
    const n2 = await cli(['--file', f('good.jsonl'), '--node', 'n2', '--json']);
    expect((JSON.parse(n2.stdout) as { records: AuditRecord[] }).records.map((r) => r.seq)).toEqual([3, 5]);
    const since = await cli(['--file', f('good.jsonl'), '--since', '2026-11-27T12:25:00Z', '--json']);
    expect((JSON.parse(since.stdout) as { records: AuditRecord[] }).records.map((r) => r.seq)).toEqual([4, 5]);
    const ago = await cli(['--file', f('good.jsonl'), '--since', '25m', '--json']); // NOW is 13:00
    expect((JSON.parse(ago.stdout) as { records: AuditRecord[] }).records.map((r) => r.seq)).toEqual([5]);
    const seq = await cli(['--file', f('good.jsonl'), '--since', '4', '--kind', 'release', '--json']);
    expect((JSON.parse(seq.stdout) as { records: AuditRecord[] }).records.map((r) => r.seq)).toEqual([5]);
  });

  it('--verify passes an intact log', async () => {
    const r = await cli(['--file', f('good.jsonl'), '--verify']);
    expect(r.code).toBe(0);
    expect(r.stderr).toMatch(/^chain ok: 5 records, head seq 5/);
  });

  it('--verify detects a middle record edited in the file (exit 1, names its seq)', async () => {
    const r = await cli(['--file', f('edited.jsonl'), '--verify', '--json']);
    expect(r.code).toBe(1);
    expect(JSON.parse(r.stdout).verification).toMatchObject({ ok: false, firstBadSeq: 3 });
    expect(r.stderr).toContain('FAILED at seq 3');
    // Without --verify the edit is not noticed: listing is not verification.
    expect((await cli(['--file', f('edited.jsonl')])).code).toBe(0);
  });

  it('--verify reports a torn last line', async () => {
    const r = await cli(['--file', f('torn.jsonl'), '--verify']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/FAILED at seq 6: torn last line 6/);
    expect((await cli(['--file', f('torn.jsonl')])).stderr).toMatch(/torn last line; run with --verify/);
  });

  describe('--url (GET /kbs/v0/audit with an admin token)', () => {
    // A stand-in KBS endpoint: answers {"records": [...]} from a file, only with the right token.
    const SERVER = `
      const http = require('node:http'); const fs = require('node:fs');
      const [port, file] = process.argv.slice(1);
      http.createServer((req, res) => {
        if (req.headers.authorization !== 'Bearer admin-token') { res.writeHead(401, {'content-type':'application/json'}); return res.end('{"type":"https://github.com/confidential-containers/kbs/errors/AdminAuthAccess","detail":"bad token"}'); }
        const records = fs.readFileSync(file, 'utf8').split('\\n').filter(Boolean).map((l) => JSON.parse(l));
        res.writeHead(200, {'content-type':'application/json'}); res.end(JSON.stringify({ records, query: req.url }));
      }).listen(Number(port), '127.0.0.1');`;
    let server: SpawnedProcess;
    let url: string;
    beforeAll(async () => {
      const port = await freePort();
      server = spawnProcess({ name: 'audit-endpoint', command: process.execPath, args: ['-e', SERVER, String(port), f('edited.jsonl')] });
      await waitForPort(port, server);
      url = `http://127.0.0.1:${port}`;
      await writeFile(f('token'), 'admin-token\n');
      await writeFile(f('wrong-token'), 'other\n');
    });
    afterAll(async () => {
      await server.stop();
    });

    it('lists and verifies the served log', async () => {
      const list = await cli(['--url', url, '--admin-token-file', f('token'), '--node', 'n1', '--json']);
      expect(list.code).toBe(0);
      expect((JSON.parse(list.stdout) as { records: AuditRecord[] }).records.map((r) => r.seq)).toEqual([1, 2]);
      const v = await cli(['--url', url, '--admin-token-file', f('token'), '--verify']);
      expect(v.code).toBe(1);
      expect(v.stderr).toContain('FAILED at seq 3');
    });

    it('reports a refused admin token (exit 3, as every refusal by the KBS)', async () => {
      const r = await cli(['--url', url, '--admin-token-file', f('wrong-token')]);
      expect(r.code).toBe(3);
      expect(r.stderr).toMatch(/HTTP 401.*AdminAuthAccess/);
    });
  });

  it('refuses bad usage with exit 2', async () => {
    expect((await cli([])).code).toBe(2);
    expect((await cli(['--file', f('good.jsonl'), '--url', 'http://127.0.0.1:1'])).code).toBe(2);
    expect((await cli(['--file', f('good.jsonl'), '--since', 'yesterday'])).code).toBe(2);
    expect((await cli(['--file', f('good.jsonl'), '--kind', 'secret'])).code).toBe(2);
    expect((await cli(['--file', f('missing.jsonl')])).code).toBe(2);
    expect((await cli(['--url', 'http://127.0.0.1:1'])).stderr).toMatch(/admin-token-file/);
    expect(await readFile(f('good.jsonl'), 'utf8')).toContain('"seq":1');
  });
});
