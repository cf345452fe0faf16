// `keyhold` as a whole: global options, environment, transport (https with --cert-file), admin
// token errors, --json errors. A local HTTP and HTTPS server (certificate made by openssl) stand in
// for the KBS admin API.
import { execFileSync } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer as createHttpServer, type IncomingMessage, type ServerResponse, type Server } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { SignJWT, jwtVerify } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runKeyhold } from './program.js';

const admin = generateKeyPairSync('ed25519');
let dir: string;
let http: Server;
let https: Server;
let httpUrl: string;
let httpsUrl: string;
let tokenFile: string;
let expiredFile: string;
const seen: { url: string; auth: string | undefined }[] = [];

async function handler(req: IncomingMessage, res: ServerResponse): Promise<void> {
  seen.push({ url: req.url ?? '', auth: req.headers.authorization });
  const token = (req.headers.authorization ?? '').replace(/^Bearer /, '');
  try {
    await jwtVerify(token, admin.publicKey);
  } catch (err) {
    res.writeHead(401, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ type: 'https://github.com/confidential-containers/kbs/errors/AdminAuthAccess', detail: (err as Error).message }));
    return;
  }
  res.writeHead(200, { 'content-type': 'application/json' });
  res.end(JSON.stringify({ policies: [] }));
}

const listen = (s: Server): Promise<number> => new Promise((r) => s.listen(0, '127.0.0.1', () => r((s.address() as AddressInfo).port)));

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'keyhold-program-'));
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', join(dir, 'kbs.key'), '-out', join(dir, 'ca.pem'), '-days', '1', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1'], { stdio: 'ignore' });
  http = createHttpServer((q, r) => void handler(q, r));
  https = createHttpsServer({ key: readFileSync(join(dir, 'kbs.key')), cert: readFileSync(join(dir, 'ca.pem')) }, (q, r) => void handler(q, r));
  httpUrl = `http://127.0.0.1:${await listen(http)}`;
  httpsUrl = `https://127.0.0.1:${await listen(https)}`;
  const now = Math.floor(Date.now() / 1000);
  tokenFile = join(dir, 'admin.jwt');
  writeFileSync(tokenFile, `${await new SignJWT({ role: 'admin' }).setProtectedHeader({ alg: 'EdDSA' }).setIssuedAt(now).setExpirationTime(now + 300).sign(admin.privateKey)}\n`);
  expiredFile = join(dir, 'expired.jwt');
  writeFileSync(expiredFile, await new SignJWT({ role: 'admin' }).setProtectedHeader({ alg: 'EdDSA' }).setIssuedAt(now - 7200).setExpirationTime(now - 3600).sign(admin.privateKey));
  writeFileSync(join(dir, 'admin.key.pem'), admin.privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 });
});

afterAll(async () => {
  await new Promise((r) => http.close(r));
  await new Promise((r) => https.close(r));
  rmSync(dir, { recursive: true, force: true });
});

async function keyhold(argv: string[], env: NodeJS.ProcessEnv = {}) {
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  let out = '';
  let err = '';
  stdout.on('data', (b: Buffer) => (out += b.toString()));
  stderr.on('data', (b: Buffer) => (err += b.toString()));
  const code = await runKeyhold(argv, { stdout, stderr }, env);
  return { code, out, err };
}

describe('keyhold: global options and environment', () => {
  it('takes --url and --admin-token-file before or after the command, as kbs-client users type them', async () => {
    for (const argv of [
      ['--url', httpUrl, 'config', '--admin-token-file', tokenFile, 'list-policies'],
      ['config', 'list-policies', '--url', httpUrl, '--admin-token-file', tokenFile],
      ['--admin-token-file', tokenFile, 'config', 'list-policies', '--url', httpUrl],
    ]) {
      const r = await keyhold(argv);
      expect(r.code, `${argv.join(' ')}: ${r.err}`).toBe(0);
      expect(JSON.parse(r.out)).toEqual({ policies: [] });
    }
  });

  it('reads KEYHOLD_KBS_URL and KEYHOLD_ADMIN_TOKEN_FILE', async () => {
    const r = await keyhold(['config', 'list-policies'], { KEYHOLD_KBS_URL: httpUrl, KEYHOLD_ADMIN_TOKEN_FILE: tokenFile });
    expect(r.code, r.err).toBe(0);
  });

  it('a KBS URL without a scheme is a usage error (exit 2) that shows the fix, from the flag or the environment', async () => {
    const host = httpUrl.slice('http://'.length);
    const flag = await keyhold(['--url', host, 'config', 'list-policies', '--admin-token-file', tokenFile]);
    expect(flag.code).toBe(2);
    expect(flag.err).toBe(`keyhold config list-policies: --url "${host}" has no scheme\n  hint: write it as http://${host} (or https://...)\n`);
    const env = await keyhold(['config', 'list-policies', '--admin-token-file', tokenFile], { KEYHOLD_KBS_URL: host });
    expect(env.code).toBe(2);
    expect(env.err).toMatch(/KEYHOLD_KBS_URL ".*" has no scheme/);
  });

  it("--auth-private-key signs a short-lived admin token here, as kbs-client's config --auth-private-key does", async () => {
    const r = await keyhold(['--url', httpUrl, 'config', '--auth-private-key', join(dir, 'admin.key.pem'), 'list-policies']);
    expect(r.code, r.err).toBe(0);
    const token = (seen[seen.length - 1]?.auth ?? '').replace(/^Bearer /, '');
    const { payload } = await jwtVerify(token, admin.publicKey);
    expect((payload.exp as number) - (payload.iat as number)).toBe(300);
  });

  it('an expired admin token: exit 3, and the hint says to mint a new one with keyhold token issue', async () => {
    const r = await keyhold(['--url', httpUrl, '--admin-token-file', expiredFile, 'config', 'list-policies']);
    expect(r.code).toBe(3);
    expect(r.err).toMatch(/HTTP 401: .* \(AdminAuthAccess\)\n/);
    expect(r.err).toMatch(new RegExp(`hint: the admin token in ${expiredFile} expired at \\d{4}-.*; mint one with: keyhold token issue --key admin.key.pem --role admin > ${expiredFile}`));
  });

  it('no token at all: a usage error that says how to get one', async () => {
    const r = await keyhold(['--url', httpUrl, 'config', 'list-policies']);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/admin calls need --admin-token-file FILE \(env KEYHOLD_ADMIN_TOKEN_FILE\) or --auth-private-key KEY.pem\n {2}hint: mint one with: keyhold token issue/);
  });

  it('a missing token file: one line naming the file', async () => {
    const r = await keyhold(['--url', httpUrl, '--admin-token-file', join(dir, 'nope.jwt'), 'config', 'list-policies']);
    expect([r.code, r.err]).toEqual([1, `keyhold config list-policies: cannot read ${join(dir, 'nope.jwt')}: no such file or directory\n`]);
  });

  it('--json turns errors into one JSON line on stderr', async () => {
    const r = await keyhold(['--url', httpUrl, '--admin-token-file', expiredFile, 'config', 'list-policies', '--json']);
    expect(r.code).toBe(3);
    const e = JSON.parse(r.err) as { error: { code: string; message: string; hint: string; exit: number } };
    expect(e.error).toMatchObject({ code: 'HTTP_401', exit: 3 });
    expect(e.error.hint).toMatch(/keyhold token issue/);
    expect(r.out).toBe('');
  });
});

describe('keyhold: https KBS (--cert-file, KEYHOLD_KBS_CA)', () => {
  it('trusts the CA given with --cert-file (or KEYHOLD_KBS_CA) for the admin calls', async () => {
    const flag = await keyhold(['--url', httpsUrl, '--cert-file', join(dir, 'ca.pem'), '--admin-token-file', tokenFile, 'config', 'list-policies']);
    expect(flag.code, flag.err).toBe(0);
    const env = await keyhold(['--url', httpsUrl, '--admin-token-file', tokenFile, 'config', 'list-policies'], { KEYHOLD_KBS_CA: join(dir, 'ca.pem') });
    expect(env.code, env.err).toBe(0);
  });

  it('without it, an untrusted certificate points at --cert-file', async () => {
    const r = await keyhold(['--url', httpsUrl, '--admin-token-file', tokenFile, 'config', 'list-policies']);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/certificate at 127\.0\.0\.1:\d+ is not trusted \(DEPTH_ZERO_SELF_SIGNED_CERT\)\n {2}hint: .*--cert-file FILE\.pem/);
  });

  it('https:// against a plain-HTTP KBS, and http:// against an https one, say so', async () => {
    const a = await keyhold(['--url', httpUrl.replace('http:', 'https:'), '--admin-token-file', tokenFile, 'config', 'list-policies']);
    expect(a.code).toBe(1);
    expect(a.err).toMatch(/answers plain HTTP, not HTTPS\n {2}hint: use http:\/\//);
    expect(a.err).not.toMatch(/wrong version number/);
    const b = await keyhold(['--url', httpsUrl.replace('https:', 'http:'), '--admin-token-file', tokenFile, 'config', 'list-policies']);
    expect(b.code).toBe(1);
    expect(b.err).toMatch(/speaks HTTPS, not plain HTTP\n {2}hint: use https:\/\//);
  });

  it('refuses a --cert-file that holds no certificate (usage error)', async () => {
    const r = await keyhold(['--url', httpsUrl, '--cert-file', join(dir, 'kbs.key'), '--admin-token-file', tokenFile, 'config', 'list-policies']);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/holds no PEM certificate/);
  });
});

describe('keyhold: help and usage', () => {
  it('--help on stdout (exit 0); no command: help on stderr (exit 2); did-you-mean', async () => {
    const h = await keyhold(['--help']);
    expect(h.code).toBe(0);
    expect(h.out).toMatch(/^Usage: keyhold \[options\] \[command\]/);
    expect(h.out).toMatch(/get-resource/);
    const none = await keyhold([]);
    expect([none.code, none.out]).toEqual([2, '']);
    const typo = await keyhold(['config', 'set-resouce']);
    expect(typo.code).toBe(2);
    expect(typo.err).toMatch(/did you mean set-resource\?/);
    const flag = await keyhold(['config', 'list-policies', '--ulr', 'x']);
    expect(flag.code).toBe(2);
    expect(flag.err).toMatch(/did you mean --url\?/);
  });

  it('get-resource without a resource is a usage error (exit 2)', async () => {
    expect((await keyhold(['get-resource'])).code).toBe(2);
    expect((await keyhold(['get-resource', '--tcti', 'swtpm:port=1'])).code).toBe(2);
  });
});
