// `keyhold-kbs serve` in process: refusals before start (private admin key, config errors with
// file:line, usage errors) and a clean start/stop.
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { afterAll, describe, expect, it } from 'vitest';
import { checkAdminPublicKeyFile, runKbsCli } from './serve-command.js';

const dir = mkdtempSync(join(tmpdir(), 'keyhold-kbs-cli-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const f = (n: string): string => join(dir, n);

const ed = generateKeyPairSync('ed25519');
writeFileSync(f('admin.pub.pem'), ed.publicKey.export({ type: 'spki', format: 'pem' }));
writeFileSync(f('admin.key.pem'), ed.privateKey.export({ type: 'pkcs8', format: 'pem' }));
writeFileSync(f('ec.key.pem'), generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ type: 'sec1', format: 'pem' }));
writeFileSync(f('junk.pem'), 'hello');

async function kbs(argv: string[], opts: { signal?: AbortSignal } = {}) {
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  let out = '';
  let err = '';
  stdout.on('data', (b: Buffer) => (out += b.toString()));
  stderr.on('data', (b: Buffer) => (err += b.toString()));
  const code = await runKbsCli(argv, { stdout, stderr }, {}, opts);
  return { code, out, err };
}

describe('keyhold-kbs serve refuses before starting', () => {
  it('a PRIVATE key given as --admin-public-key (exit 2; it is never read as a public key)', async () => {
    for (const key of ['admin.key.pem', 'ec.key.pem']) {
      const r = await kbs(['serve', '--listen', '127.0.0.1:0', '--data-dir', f('data'), '--admin-public-key', f(key)]);
      expect(r.code, key).toBe(2);
      expect(r.out).toBe('');
      expect(r.err).toMatch(new RegExp(`--admin-public-key ${f(key)} is a PRIVATE key; the KBS needs only the public half\\n {2}hint: write the public key with: openssl pkey -in`));
    }
  });

  it('a private key in [admin] identities, and a file that is no key at all', async () => {
    writeFileSync(f('ids.toml'), `[admin]\nidentities = [ { name = "alice", public_key_file = "${f('admin.key.pem')}", role = "admin" } ]\n`);
    const r = await kbs(['serve', '--listen', '127.0.0.1:0', '--data-dir', f('data'), '-c', f('ids.toml')]);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/\[admin\] identity alice: public_key_file .* is a PRIVATE key/);
    await expect(checkAdminPublicKeyFile(f('junk.pem'), '--admin-public-key')).rejects.toThrow(/is not a PEM public key/);
    await expect(checkAdminPublicKeyFile(f('admin.pub.pem'), '--admin-public-key')).resolves.toBeUndefined();
  });

  it('config errors name the file, the line and the key path (TOML syntax: line and column)', async () => {
    writeFileSync(f('type.toml'), 'listen = "127.0.0.1:0"\n\n[tpm]\ntrusted_ak_list = "yes"\n');
    const type = await kbs(['serve', '-c', f('type.toml'), '--data-dir', f('data')]);
    expect(type.code).toBe(2);
    expect(type.err).toMatch(new RegExp(`^keyhold-kbs serve: ${f('type.toml')}:4: tpm\\.trusted_ak_list: .*boolean`));
    writeFileSync(f('unknown.toml'), '[storage]\nbackend = "embedded"\nfolder = "x"\n');
    expect((await kbs(['serve', '-c', f('unknown.toml'), '--data-dir', f('data')])).err).toMatch(new RegExp(`${f('unknown.toml')}:3: storage\\.folder: unknown key`));
    writeFileSync(f('syntax.toml'), 'listen = "127.0.0.1:0"\n[tpm\n');
    expect((await kbs(['serve', '-c', f('syntax.toml'), '--data-dir', f('data')])).err).toMatch(new RegExp(`${f('syntax.toml')}:2:\\d+: invalid TOML: `));
    const missing = await kbs(['serve', '-c', f('absent.toml')]);
    expect([missing.code, missing.err]).toEqual([2, `keyhold-kbs serve: cannot read config file ${f('absent.toml')}: no such file\n`]);
  });

  // SECURITY negative tests: plain HTTP is never a silent default, and a contradictory transport is refused.
  it('neither a TLS certificate nor --insecure-http: exit 2 saying how to make a certificate', async () => {
    const r = await kbs(['serve', '--listen', '127.0.0.1:0', '--data-dir', f('data'), '--admin-public-key', f('admin.pub.pem')]);
    expect(r.code).toBe(2);
    expect(r.out).toBe('');
    expect(r.err).toMatch(/no TLS certificate configured: give \[http_server\] certificate and private_key .* or pass --insecure-http/);
    expect(r.err).toMatch(/hint: a throwaway certificate for this host: openssl req -x509 /);
    writeFileSync(f('both.toml'), `[http_server]\ncertificate = "${f('c.pem')}"\nprivate_key = "${f('k.pem')}"\n`);
    const both = await kbs(['serve', '--insecure-http', '-c', f('both.toml'), '--data-dir', f('data')]);
    expect(both.code).toBe(2);
    expect(both.err).toMatch(/contradict each other/);
    writeFileSync(f('half.toml'), `[http_server]\ncertificate = "${f('c.pem')}"\n`);
    expect((await kbs(['serve', '-c', f('half.toml'), '--data-dir', f('data')])).err).toMatch(/certificate and private_key go together/);
    writeFileSync(f('mtls.toml'), `[admin]\nclient_ca = "${f('ca.pem')}"\n`);
    expect((await kbs(['serve', '--insecure-http', '-c', f('mtls.toml'), '--data-dir', f('data')])).err).toMatch(/client_ca .* needs TLS/);
    writeFileSync(f('timeouts.toml'), `[http_server]\ninsecure_http = true\nrequest_timeout_ms = 5000\nheaders_timeout_ms = 9000\n`);
    expect((await kbs(['serve', '-c', f('timeouts.toml'), '--data-dir', f('data')])).err).toMatch(/headers_timeout_ms \(9000\) must not exceed request_timeout_ms \(5000\)/);
  });

  it('a certificate file that is missing or not a certificate: exit 2 naming the file', async () => {
    writeFileSync(f('bad-tls.toml'), `[http_server]\ncertificate = "${f('junk.pem')}"\nprivate_key = "${f('ec.key.pem')}"\n`);
    const r = await kbs(['serve', '--listen', '127.0.0.1:0', '-c', f('bad-tls.toml'), '--data-dir', f('data-tls')]);
    expect(r.code).toBe(2);
    expect(r.err).toContain(`[http_server] certificate ${f('junk.pem')} holds no PEM certificate`);
    writeFileSync(f('gone-tls.toml'), `[http_server]\ncertificate = "${f('nope.pem')}"\nprivate_key = "${f('ec.key.pem')}"\n`);
    expect((await kbs(['serve', '--listen', '127.0.0.1:0', '-c', f('gone-tls.toml'), '--data-dir', f('data-tls')])).err).toContain(`${f('nope.pem')}: no such file`);
  });

  it('usage: unknown flag with a suggestion, --help on stdout', async () => {
    const r = await kbs(['serve', '--lisen', 'x']);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/unknown option '--lisen'\n {2}hint: did you mean --listen\?/);
    const h = await kbs(['serve', '--help']);
    expect(h.code).toBe(0);
    expect(h.out).toMatch(/^Usage: keyhold-kbs serve \[options\]/);
  });
});

describe('keyhold-kbs serve', () => {
  it('starts with a public admin key, prints its URL, answers, stops on the signal (exit 0)', async () => {
    const ac = new AbortController();
    const stdout = new PassThrough();
    const stderr = new PassThrough();
    let out = '';
    stdout.on('data', (b: Buffer) => (out += b.toString()));
    stderr.resume();
    const running = runKbsCli(['serve', '--insecure-http', '--listen', '127.0.0.1:0', '--data-dir', f('data'), '--admin-public-key', f('admin.pub.pem'), '--log-level', 'warn'], { stdout, stderr }, {}, { signal: ac.signal });
    for (let i = 0; i < 400 && !out.includes('\n'); i++) await new Promise((r) => setTimeout(r, 25));
    expect(out).toMatch(/^http:\/\/127\.0\.0\.1:\d+\n$/);
    expect((await fetch(`${out.trim()}/healthz`)).status).toBe(200);
    ac.abort();
    expect(await running).toBe(0);
  });
});
