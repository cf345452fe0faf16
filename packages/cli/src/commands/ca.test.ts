// `keyhold ca` against a local HTTP server standing in for the KBS admin API.
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { CommandIo } from '../command.js';
import { runKeyhold } from '../program.js';

/** `keyhold ca ...` in process, with an empty environment. */
const run = (argv: string[], io: CommandIo, now?: () => Date): Promise<number> => runKeyhold([...['ca'], ...argv], io, {}, now !== undefined ? { now } : {});

class Capture extends Writable {
  text = '';
  override _write(chunk: Buffer | string, _enc: BufferEncoding, cb: () => void): void {
    this.text += chunk.toString();
    cb();
  }
}

const repoRoot = fileURLToPath(new URL('../../../../', import.meta.url));
const vendor = path.resolve(repoRoot, '../shared/corpus/ek-certs/tpm_cert_store');
const store: { file: string; subject: string; issuer: string; notAfter: string; sha256: string }[] = [];
const seen: { method: string; url: string; type: string | undefined; body: Buffer }[] = [];
let server: Server;
let url = '';
let dir = '';
let tokenFile = '';

beforeAll(async () => {
  server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      seen.push({ method: req.method ?? '', url: req.url ?? '', type: req.headers['content-type'], body: Buffer.concat(chunks) });
      res.writeHead(200, { 'content-type': 'application/json' });
      // Like the KBS: an upload answers with its entries (new or not); the store remembers them.
      const body = Buffer.concat(chunks);
      const entry = { file: 'x.pem', subject: 'CN=Test', issuer: 'CN=Root', notAfter: '2030-01-01T00:00:00.000Z', sha256: createHash('sha256').update(body).digest('hex') };
      if (req.method === 'POST' && !store.some((e) => e.sha256 === entry.sha256)) store.push(entry);
      res.end(JSON.stringify(req.method === 'GET' ? { certificates: store.length > 0 ? store : [{ ...entry, sha256: 'c'.repeat(64) }] } : { added: [entry] }));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const addr = server.address();
  url = `http://127.0.0.1:${typeof addr === 'object' && addr ? addr.port : 0}`;
  dir = mkdtempSync(path.join(tmpdir(), 'keyhold-ca-cli-'));
  tokenFile = path.join(dir, 'token');
  writeFileSync(tokenFile, 'admin.jwt');
});
afterAll(async () => {
  await new Promise((r) => server.close(r));
  rmSync(dir, { recursive: true, force: true });
});
beforeEach(() => {
  seen.length = 0;
});

async function cli(argv: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const stdout = new Capture();
  const stderr = new Capture();
  const code = await run(['--url', url, '--admin-token-file', tokenFile, ...argv], { stdout, stderr });
  return { code, stdout: stdout.text, stderr: stderr.text };
}

describe.skipIf(!existsSync(vendor))('keyhold ca (skipped when ../shared/corpus is absent)', () => {
  it('add uploads each file as-is (leading text included) and prints what the KBS added', async () => {
    const files = ['Alibaba_Cloud_vTPM_EK.pem', 'GS_TPM_RT.pem'].map((f) => path.join(vendor, f));
    const r = await cli(['add', ...files]);
    expect(r.code).toBe(0);
    // The store is listed first (to tell new certificates from known ones), then each file is sent as-is.
    expect(seen.map((s) => `${s.method} ${s.url}`)).toEqual(['GET /kbs/v0/admin/ek-ca', 'POST /kbs/v0/admin/ek-ca', 'POST /kbs/v0/admin/ek-ca']);
    expect(seen.slice(1).map((s) => s.type)).toEqual(Array(2).fill('application/octet-stream'));
    expect(seen[1]?.body.equals(readFileSync(files[0] as string))).toBe(true);
    const sha = createHash('sha256').update(readFileSync(files[0] as string)).digest('hex');
    expect(r.stdout).toContain(`added ${sha}  CN=Test`);
    expect(r.stdout).not.toContain('already present');
  });

  it('add says "already present" for a certificate the store holds', async () => {
    const file = path.join(vendor, 'GS_TPM_RT.pem');
    const sha = createHash('sha256').update(readFileSync(file)).digest('hex');
    const r = await cli(['add', file]);
    expect(r.code).toBe(0);
    expect(r.stdout).toBe(`already present ${sha}  CN=Test\n`);
    const j = await cli(['add', file, '--json']);
    expect(JSON.parse(j.stdout)).toMatchObject({ added: [], alreadyPresent: [{ sha256: sha }] });
  });

  it('add refuses a file that is not a CA certificate before sending anything', async () => {
    const junk = path.join(dir, 'junk.pem');
    writeFileSync(junk, 'not a certificate');
    const r = await cli(['add', path.join(vendor, 'GS_TPM_RT.pem'), junk]);
    expect(r.code).toBe(1);
    expect(seen).toHaveLength(0);
    expect((await cli(['add'])).code).toBe(2);
  });

  it('list prints the store', async () => {
    const r = await cli(['list', '--json']);
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout).certificates[0].subject).toBe('CN=Test');
    expect(seen.map((s) => `${s.method} ${s.url}`)).toEqual(['GET /kbs/v0/admin/ek-ca']);
  });
});
