import { createServer, type IncomingMessage, type Server } from 'node:http';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CommandIo } from '../command.js';
import { runKeyhold } from '../program.js';

/** `keyhold config ...` in process, with an empty environment. */
const run = (argv: string[], io: CommandIo, now?: () => Date): Promise<number> => runKeyhold([...['config'], ...argv], io, {}, now !== undefined ? { now } : {});

interface Seen {
  method: string;
  url: string;
  auth: string | undefined;
  body: string;
}
let server: Server;
let url: string;
let dir: string;
let tokenFile: string;
const seen: Seen[] = [];

function io() {
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  let out = '';
  let err = '';
  stdout.on('data', (b: Buffer) => (out += b.toString()));
  stderr.on('data', (b: Buffer) => (err += b.toString()));
  return { io: { stdout, stderr }, out: () => out, err: () => err };
}

async function body(req: IncomingMessage): Promise<string> {
  let s = '';
  for await (const c of req) s += (c as Buffer).toString();
  return s;
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'keyhold-cli-config-'));
  tokenFile = join(dir, 'admin.jwt');
  await writeFile(tokenFile, 'aaa.bbb.ccc\n');
  // A stand-in KBS answering by path, to check what the CLI sends and how it maps statuses.
  server = createServer((req, res) => {
    void body(req).then((b) => {
      seen.push({ method: req.method ?? '', url: req.url ?? '', auth: req.headers.authorization, body: b });
      const status = req.url?.includes('/forbidden') ? 403 : req.url?.includes('/missing') ? 404 : req.url?.includes('/broken') ? 400 : 200;
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(
        status === 200
          ? JSON.stringify({ policy_id: 'x', version: 1, resources: [] })
          : JSON.stringify({ type: 'https://github.com/confidential-containers/kbs/errors/AdminAuthAccess', detail: `status ${status}` }),
      );
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const addr = server.address();
  url = `http://127.0.0.1:${typeof addr === 'object' && addr !== null ? addr.port : 0}`;
});

afterAll(async () => {
  await new Promise<void>((r) => server.close(() => r()));
  await rm(dir, { recursive: true, force: true });
});

describe('keyhold config', () => {
  it('sends set-resource-policy --allow-all as a base64url CEL document, scoped by --repository', async () => {
    const t = io();
    expect(await run(['--url', url, '--admin-token-file', tokenFile, '--json', 'set-resource-policy', '--allow-all', '--repository', 'a'], t.io)).toBe(0);
    const last = seen[seen.length - 1]!;
    expect(last).toMatchObject({ method: 'POST', url: '/kbs/v0/resource-policy/a', auth: 'Bearer aaa.bbb.ccc' });
    const doc = JSON.parse(Buffer.from((JSON.parse(last.body) as { policy: string }).policy, 'base64url').toString()) as { rule: string };
    expect(doc.rule).toBe('true');
    expect(JSON.parse(t.out())).toMatchObject({ policy_id: 'x', version: 1 });
  });

  it('sends set-attestation-policy with type cel and the id', async () => {
    const f = join(dir, 'att.json');
    await writeFile(f, '{"id":"strict","type":"cel","kind":"attestation","rules":{"status":"\\"none\\""}}');
    expect(await run(['--url', url, '--admin-token-file', tokenFile, 'set-attestation-policy', '--policy-file', f, '--id', 'strict'], io().io)).toBe(0);
    const b = JSON.parse(seen[seen.length - 1]!.body) as Record<string, string>;
    expect(b).toMatchObject({ type: 'cel', policy_id: 'strict' });
  });

  it('keeps the --id the user gave: the document id is set to it, and the CLI says so', async () => {
    const f = join(dir, 'att-default.json');
    await writeFile(f, '{"id":"default","type":"cel","kind":"attestation","rules":{"status":"\\"none\\""}}');
    const t = io();
    expect(await run(['--url', url, '--admin-token-file', tokenFile, 'set-attestation-policy', '--policy-file', f, '--id', 'prod', '--type', 'cel'], t.io)).toBe(0);
    const b = JSON.parse(seen[seen.length - 1]!.body) as Record<string, string>;
    expect(b).toMatchObject({ type: 'cel', policy_id: 'prod' });
    expect(JSON.parse(Buffer.from(b['policy']!, 'base64url').toString())).toMatchObject({ id: 'prod', kind: 'attestation' });
    expect(t.err()).toContain('says id "default"; stored under --id "prod"');
    expect(t.err()).toContain('attestation policy stored under id "x", version 1');
  });

  it("kbs-client's verbs and flags: get-reference-value --id, set-resource-policy --default, set-sample-reference-value", async () => {
    expect(await run(['--url', url, '--admin-token-file', tokenFile, 'get-reference-value', '--id', 'trusted_ak'], io().io)).toBe(0);
    expect(seen[seen.length - 1]).toMatchObject({ method: 'GET', url: '/kbs/v0/reference-value/trusted_ak' });
    expect(await run(['--url', url, '--admin-token-file', tokenFile, 'set-resource-policy', '--default'], io().io)).toBe(0);
    const doc = JSON.parse(Buffer.from((JSON.parse(seen[seen.length - 1]!.body) as { policy: string }).policy, 'base64url').toString()) as { kind: string; rule: string };
    expect(doc.kind).toBe('resource');
    expect(doc.rule).toContain('affirming');
    expect(await run(['--url', url, '--admin-token-file', tokenFile, 'set-sample-reference-value', 'tpm_pcr07', 'aa', 'bb'], io().io)).toBe(0);
    const rv = JSON.parse(seen[seen.length - 1]!.body) as { type: string; payload: string };
    expect(rv.type).toBe('sample');
    expect(JSON.parse(Buffer.from(rv.payload, 'base64').toString())).toEqual({ tpm_pcr07: ['aa', 'bb'] });
  });

  it('refuses --as-integer / --as-bool / --as-single-value with what to do instead (nothing sent)', async () => {
    const before = seen.length;
    for (const flag of ['--as-integer', '--as-bool', '--as-single-value']) {
      const t = io();
      expect(await run(['--url', url, '--admin-token-file', tokenFile, 'set-sample-reference-value', 'svn', '3', flag], t.io)).toBe(2);
      expect(t.err()).toMatch(/Keyhold reference values are lists of strings\n  hint: send the value as a string/);
    }
    expect(seen.length).toBe(before);
  });

  it('maps refusals to exit codes: 403 → 3, 404 → 4, 400 → 1, with the error on stderr', async () => {
    let t = io();
    expect(await run(['--url', url, '--admin-token-file', tokenFile, 'list-resources', '--repository', 'forbidden'], t.io)).toBe(3);
    expect(t.err()).toMatch(/HTTP 403: status 403 \(AdminAuthAccess\)/);
    expect(t.out()).toBe('');
    t = io();
    expect(await run(['--url', url, '--admin-token-file', tokenFile, 'get-resource-policy', '--repository', 'missing'], t.io)).toBe(4);
    t = io();
    expect(await run(['--url', url, '--admin-token-file', tokenFile, 'set-resource-policy', '--deny-all', '--repository', 'broken'], t.io)).toBe(1);
  });

  it('refuses bad usage with exit 2 before calling the KBS', async () => {
    const before = seen.length;
    for (const argv of [
      ['set-resource-policy', '--allow-all', '--deny-all'],
      ['set-resource-policy'],
      ['set-resource-policy', '--allow-all', '--repository', '../x'],
      ['set-attestation-policy'],
      ['frobnicate'],
      ['delete-resource', '--path', 'a/../b'],
      ['--bogus'],
    ]) {
      const t = io();
      expect(await run(['--url', url, '--admin-token-file', tokenFile, ...argv], t.io), argv.join(' ')).toBe(2);
      expect(t.err()).toMatch(/^keyhold config[a-z -]*: /);
    }
    expect(seen.length).toBe(before);
  });

  it('fails with exit 1 when the KBS is unreachable or the token file is missing', async () => {
    expect(await run(['--url', 'http://127.0.0.1:1', '--admin-token-file', tokenFile, 'list-policies'], io().io)).toBe(1);
    expect(await run(['--url', url, '--admin-token-file', join(dir, 'nope'), 'list-policies'], io().io)).toBe(1);
  });
});
