// keyhold-agent's command line with a stand-in session (no TPM): path syntax, output encodings,
// exit codes, TCTI and URL checks. The real TPM path is covered by the e2e tests.
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Server as HttpsServer } from 'node:https';
import { PassThrough } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runAgentCli, type AgentCliOptions } from './cli.js';
import { captureCliOutput } from './cli-output.test-support.js';
import type { AgentConfig } from './config.js';
import { TpmError } from './errors.js';
import { KbsClientError } from './kbs-client/errors.js';
import type { NodeSession } from './node-session.js';

const dir = mkdtempSync(join(tmpdir(), 'keyhold-agent-cli-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const SECRET = Buffer.from([0, 1, 2, 0xff, 0x0a]);

function fakeOpener(behaviour: { fail?: unknown } = {}) {
  const calls: { config: AgentConfig; path?: unknown; version?: unknown }[] = [];
  const opener = async (config: AgentConfig): Promise<NodeSession> => {
    const call: (typeof calls)[number] = { config };
    calls.push(call);
    return {
      client: {
        async getResource(path: unknown, opts: { version?: number }) {
          call.path = path;
          call.version = opts.version;
          if (behaviour.fail !== undefined) throw behaviour.fail;
          return Buffer.from(SECRET);
        },
        async token() {
          if (behaviour.fail !== undefined) throw behaviour.fail;
          return 'a.b.c';
        },
      },
      async close() {},
    } as unknown as NodeSession;
  };
  return { opener, calls };
}

async function agent(argv: string[], opts: { fail?: unknown; env?: NodeJS.ProcessEnv; flavor?: AgentCliOptions['flavor'] } = {}) {
  const c = captureCliOutput();
  const f = fakeOpener(opts.fail !== undefined ? { fail: opts.fail } : {});
  const code = await runAgentCli(argv, c.io, opts.env ?? {}, f.opener, opts.flavor !== undefined ? { flavor: opts.flavor } : {});
  return { code, out: c.out(), err: c.err(), calls: f.calls };
}

describe('keyhold-agent get-resource', () => {
  it('takes the same path syntax as keyhold get-resource: kbs:///R/T/TAG, R/T/TAG, /R/T/TAG or --path', async () => {
    for (const argv of [['kbs:///default/key/k1?version=3'], ['default/key/k1?version=3'], ['/default/key/k1?version=3'], ['--path', 'default/key/k1?version=3']]) {
      const r = await agent(['get-resource', ...argv, '--tcti', 'swtpm:port=1']);
      expect(r.code, `${argv.join(' ')}: ${r.err}`).toBe(0);
      expect(r.calls[0]?.path).toMatchObject({ repository: 'default', type: 'key', tag: 'k1' });
      expect(r.calls[0]?.version).toBe(3);
    }
    expect((await agent(['get-resource'])).code).toBe(2);
    expect((await agent(['get-resource', 'a/b/c', '--path', 'a/b/c'])).code).toBe(2);
    const bad = await agent(['get-resource', 'a/../c']);
    expect(bad.code).toBe(2);
    expect(bad.err).toMatch(/is not a resource/);
  });

  it('prints raw bytes by default, base64 with --base64; as `keyhold get-resource` base64 unless --raw', async () => {
    expect((await agent(['get-resource', 'a/b/c'])).out.equals(SECRET)).toBe(true);
    expect((await agent(['get-resource', 'a/b/c', '--base64'])).out.toString()).toBe(`${SECRET.toString('base64')}\n`);
    expect((await agent(['get-resource', '--path', 'a/b/c'], { flavor: 'kbs-client' })).out.toString()).toBe(`${SECRET.toString('base64')}\n`);
    expect((await agent(['get-resource', '--path', 'a/b/c', '--raw'], { flavor: 'kbs-client' })).out.equals(SECRET)).toBe(true);
    expect((await agent(['get-resource', 'a/b/c', '--raw', '--base64'])).code).toBe(2);
  });

  it('-o FILE writes the secret 0600 and prints nothing on stdout', async () => {
    const file = join(dir, 'secret.bin');
    const r = await agent(['get-resource', 'a/b/c', '-o', file]);
    expect(r.code, r.err).toBe(0);
    expect(r.out.length).toBe(0);
    expect(readFileSync(file).equals(SECRET)).toBe(true);
    expect(statSync(file).mode & 0o777).toBe(0o600);
  });

  it('takes the common options before or after the command', async () => {
    const a = await agent(['--url', 'http://kbs.example:8080', 'get-resource', 'a/b/c']);
    const b = await agent(['get-resource', 'a/b/c', '--url', 'http://kbs.example:8080']);
    expect(a.calls[0]?.config.url).toBe('http://kbs.example:8080');
    expect(b.calls[0]?.config.url).toBe('http://kbs.example:8080');
  });
});

describe('keyhold-agent errors and exit codes', () => {
  it('404 → 4, 401/403 → 3, other failures → 1; one line CODE: message', async () => {
    const nf = await agent(['get-resource', 'a/b/c'], { fail: new KbsClientError('RESOURCE_NOT_FOUND', 'GET /kbs/v0/resource/a/b/c: gone', { status: 404 }) });
    expect([nf.code, nf.err]).toEqual([4, 'keyhold-agent get-resource: RESOURCE_NOT_FOUND: GET /kbs/v0/resource/a/b/c: gone\n']);
    expect((await agent(['token'], { fail: new KbsClientError('ATTESTATION_FAILED', 'no', { status: 401 }) })).code).toBe(3);
    expect((await agent(['get-resource', 'a/b/c'], { fail: new KbsClientError('POLICY_DENY', 'no', { status: 403 }) })).code).toBe(3);
    expect((await agent(['token'], { fail: new KbsClientError('KBS_REFUSED', 'no', { status: 400 }) })).code).toBe(1);
    expect(nf.out.length).toBe(0);
  });

  it('an unreachable KBS says what is wrong (no raw socket error)', async () => {
    const r = await agent(['token', '--url', 'http://127.0.0.1:1'], { fail: new KbsClientError('KBS_UNREACHABLE', 'cannot reach', { cause: Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:1'), { code: 'ECONNREFUSED' }) }) });
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/^keyhold-agent token: KBS_UNREACHABLE: nothing listens at 127\.0\.0\.1:1\n {2}hint: is keyhold-kbs running there/);
  });

  it('a TPM error names the TCTI tried; an unknown TCTI is a usage error listing the known ones', async () => {
    const tpm = await agent(['token', '--tcti', 'swtpm:host=127.0.0.1,port=9'], { fail: new TpmError('TPM_UNAVAILABLE', 'TCTI could not be initialised') });
    expect(tpm.code).toBe(1);
    expect(tpm.err).toMatch(/^keyhold-agent token: TPM_UNAVAILABLE: TCTI could not be initialised \(TCTI swtpm:host=127\.0\.0\.1,port=9\)\n {2}hint: is the TPM reachable there\?/);
    const unknown = await agent(['token', '--tcti', 'swtmp:port=9']);
    expect(unknown.code).toBe(2);
    expect(unknown.err).toMatch(/--tcti "swtmp:port=9": unknown TCTI 'swtmp' \(known: device, swtpm, mssim, tabrmd/);
    const env = await agent(['token'], { env: { TPM2TOOLS_TCTI: 'bogus' } });
    expect(env.code).toBe(2);
    expect(env.err).toMatch(/TPM2TOOLS_TCTI "bogus": unknown TCTI 'bogus'/);
    expect((await agent(['token', '--tcti', '/usr/lib/x86_64-linux-gnu/libtss2-tcti-swtpm.so.0:port=9'])).code).toBe(0);
  });

  it('a KBS URL without a scheme is a usage error; --json errors are JSON', async () => {
    const r = await agent(['token', '--url', '127.0.0.1:8080', '--json']);
    expect(r.code).toBe(2);
    expect(JSON.parse(r.err)).toEqual({ error: { code: 'USAGE', message: '--url "127.0.0.1:8080" has no scheme', hint: 'write it as http://127.0.0.1:8080 (or https://...)', exit: 2 } });
  });

  it('--help on stdout, exit 0; did-you-mean for commands and flags', async () => {
    const h = await agent(['--help']);
    expect(h.code).toBe(0);
    expect(h.out.toString()).toMatch(/^Usage: keyhold-agent/);
    const typo = await agent(['tokn']);
    expect(typo.code).toBe(2);
    expect(typo.err).toMatch(/did you mean token\?/);
    const flag = await agent(['token', '--tcit', 'x']);
    expect(flag.err).toMatch(/did you mean --tcti\?/);
  });
});

describe('keyhold-agent --cert-file (https KBS)', () => {
  // A local HTTPS server with an openssl-made certificate stands in for an https KBS: it refuses
  // /auth with a Trustee error body, which the agent can only read once TLS succeeded.
  let server: HttpsServer | undefined;
  let url = '';
  const caFile = join(dir, 'kbs-ca.pem');

  beforeAll(async () => {
    const { execFileSync } = await import('node:child_process');
    const { createServer } = await import('node:https');
    execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', join(dir, 'kbs.key'), '-out', caFile, '-days', '1', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1'], { stdio: 'ignore' });
    server = createServer({ key: readFileSync(join(dir, 'kbs.key')), cert: readFileSync(caFile) }, (_q, r) => {
      r.writeHead(401, { 'content-type': 'application/json' });
      r.end(JSON.stringify({ type: 'https://github.com/confidential-containers/kbs/errors/AttestationFailed', detail: 'no' }));
    });
    await new Promise<void>((r) => server?.listen(0, '127.0.0.1', () => r()));
    url = `https://127.0.0.1:${(server.address() as { port: number }).port}`;
  });
  afterAll(async () => {
    await new Promise((r) => server?.close(r));
  });

  async function tokenAgainstHttps(extra: string[], env: NodeJS.ProcessEnv = {}) {
    const { openNodeSession } = await import('./node-session.js');
    const { createSoftwareTpm } = await import('./tpm/software-tpm.js');
    const stdout = new PassThrough();
    const stderr = new PassThrough();
    let err = '';
    stdout.resume();
    stderr.on('data', (b: Buffer) => (err += b.toString()));
    const opener = (config: AgentConfig) => openNodeSession(config, { tpm: createSoftwareTpm() });
    // A fresh software TPM per run, so a fresh AK state directory too.
    const stateDir = join(dir, `ak-${Math.random().toString(16).slice(2)}`);
    const code = await runAgentCli(['token', '--url', url, '--ak-mode', 'stored', '--ak-alg', 'ecc', '--state-dir', stateDir, '--no-ek-identity', ...extra], { stdout, stderr }, env, opener);
    return { code, err };
  }

  it('with the CA (flag or KEYHOLD_KBS_CA) the TLS handshake succeeds and the KBS answer is read', async () => {
    const flag = await tokenAgainstHttps(['--cert-file', caFile]);
    expect(flag.code, flag.err).toBe(3);
    expect(flag.err).toMatch(/UNAUTHORIZED: \/kbs\/v0\/auth: no \(AttestationFailed\)/);
    expect((await tokenAgainstHttps([], { KEYHOLD_KBS_CA: caFile })).code).toBe(3);
  });

  it('without it the certificate is refused, and the hint names --cert-file', async () => {
    const r = await tokenAgainstHttps([]);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/KBS_UNREACHABLE: the KBS certificate at 127\.0\.0\.1:\d+ is not trusted \(DEPTH_ZERO_SELF_SIGNED_CERT\)\n {2}hint: .*--cert-file/);
  });
});

describe('keyhold-agent run (flags; the daemon itself runs in e2e/continuous-attestation)', () => {
  it('refuses bad daemon flags with exit 2 before opening the TPM', async () => {
    for (const [argv, re] of [
      [['run', '--interval', '60'], /--interval must be a duration/],
      [['run', '--interval', '100ms'], /--interval must be a duration/],
      [['run', '--delete-key-on-ban'], /--delete-key-on-ban needs --node-cert-dir/],
      [['run', '--health-listen', '0.0.0.0:9464'], /loopback/],
      [['run', '--log-level', 'loud'], /--log-level/],
    ] as const) {
      const r = await agent([...argv]);
      expect(r.code, r.err).toBe(2);
      expect(r.err).toMatch(re);
      expect(r.calls).toHaveLength(0);
    }
    expect((await agent(['run', '--help'])).out.toString()).toMatch(/--node-cert-dir[\s\S]*--health-listen/);
  });
});
