// `keyhold ca` against a local HTTP server standing in for the KBS admin API.
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { run } from './ca.js';

class Capture extends Writable {
  text = '';
  override _write(chunk: Buffer | string, _enc: BufferEncoding, cb: () => void): void {
    this.text += chunk.toString();
    cb();
  }
}

const repoRoot = fileURLToPath(new URL('../../../../', import.meta.url));
const vendor = path.resolve(repoRoot, '../shared/corpus/ek-certs/tpm_cert_store');
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
      const entry = { file: 'x.pem', subject: 'CN=Test', issuer: 'CN=Root', notAfter: '2030-01-01T00:00:00.000Z', sha256: 'c'.repeat(64) };
      res.end(JSON.stringify(req.method === 'GET' ? { certificates: [entry] } : { added: [entry] }));
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
    expect(seen.map((s) => `${s.method} ${s.url} ${s.type}`)).toEqual(Array(2).fill('POST /kbs/v0/admin/ek-ca application/octet-stream'));
    expect(seen[0]?.body.equals(readFileSync(files[0] as string))).toBe(true);
    expect(r.stdout).toContain(`added ${'c'.repeat(64)}  CN=Test`);
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
