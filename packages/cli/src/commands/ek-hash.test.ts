// Fixtures: ../shared/corpus/quotes/keylime-checkquote (ek.pub TPM2B_PUBLIC + ekpub.pem of the same
// EK) and a live swtpm provisioned by swtpm_setup --create-ek-cert (EK certificate in NV 0x01c00002).
import { execFile, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort, spawnProcess, waitForPort, type SpawnedProcess } from '@keyhold/test-harness';
import type { CommandIo } from '../command.js';
import { runKeyhold } from '../program.js';

/** `keyhold ek-hash ...` in process, with an empty environment. */
const run = (argv: string[], io: CommandIo, now?: () => Date): Promise<number> => runKeyhold([...['ek-hash'], ...argv], io, {}, now !== undefined ? { now } : {});

const repoRoot = fileURLToPath(new URL('../../../../', import.meta.url));
const kc = path.resolve(repoRoot, '../shared/corpus/quotes/keylime-checkquote');
const haveCorpus = existsSync(kc);
const haveTpm = existsSync('/usr/bin/swtpm_setup') && existsSync('/usr/bin/tpm2_createek');

class Capture extends Writable {
  text = '';
  override _write(chunk: Buffer | string, _enc: BufferEncoding, cb: () => void): void {
    this.text += chunk.toString();
    cb();
  }
}

async function cli(argv: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const stdout = new Capture();
  const stderr = new Capture();
  const code = await run(argv, { stdout, stderr });
  return { code, stdout: stdout.text, stderr: stderr.text };
}

/** Reference value computed by openssl, independently of Keyhold's code. */
function opensslHash(pemFile: string): string {
  const der = spawnSync('openssl', ['pkey', '-pubin', '-in', pemFile, '-outform', 'DER']);
  return spawnSync('sha256sum', { input: der.stdout }).stdout.toString().split(' ')[0] as string;
}

let dir = '';
beforeAll(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'keyhold-ekhash-'));
});
afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

describe.skipIf(!haveCorpus)('keyhold ek-hash on corpus files', () => {
  it('gives the same hash for TPM2B_PUBLIC, PEM SPKI and DER SPKI of one EK, equal to openssl', async () => {
    const want = opensslHash(path.join(kc, 'ekpub.pem'));
    expect(want).toMatch(/^[0-9a-f]{64}$/);
    const der = path.join(dir, 'ek.der');
    writeFileSync(der, spawnSync('openssl', ['pkey', '-pubin', '-in', path.join(kc, 'ekpub.pem'), '-outform', 'DER']).stdout);
    for (const f of [path.join(kc, 'ek.pub'), path.join(kc, 'ekpub.pem'), der]) {
      const r = await cli(['--ek-pub', f]);
      expect(r).toMatchObject({ code: 0, stdout: `${want}\n` });
    }
    const j = await cli(['--ek-pub', path.join(kc, 'ek.pub'), '--json']);
    expect(JSON.parse(j.stdout)).toEqual({ ekHash: want, source: 'ek-pub' });
  });

  it('fails with exit 1 on a damaged key and exit 2 on bad usage', async () => {
    const bad = path.join(dir, 'bad.pub');
    writeFileSync(bad, readFileSync(path.join(kc, 'ek.pub')).subarray(0, 100));
    expect((await cli(['--ek-pub', bad])).code).toBe(1);
    expect((await cli(['--ek-pub', path.join(dir, 'missing')])).code).toBe(1);
    expect((await cli([])).code).toBe(2);
    expect((await cli(['--ek-pub', bad, '--ek-cert', bad])).code).toBe(2);
    expect((await cli(['--tcti', 'x', '--alg', 'dsa'])).code).toBe(2);
  });
});

async function consecutivePorts(): Promise<[number, number]> {
  for (;;) {
    const port = await freePort();
    const ok = await new Promise<boolean>((resolve) => {
      const srv = createServer();
      srv.once('error', () => resolve(false));
      srv.listen(port + 1, '127.0.0.1', () => srv.close(() => resolve(true)));
    });
    if (ok) return [port, port + 1];
  }
}

describe.skipIf(!haveTpm)('keyhold ek-hash against swtpm', () => {
  let state = '';
  let swtpm: SpawnedProcess;
  let tcti = '';
  beforeAll(async () => {
    state = mkdtempSync(path.join(tmpdir(), 'keyhold-ekhash-tpm-'));
    await promisify(execFile)('swtpm_setup', ['--tpm2', '--tpmstate', state, '--create-ek-cert', '--overwrite']);
    const [port, ctrl] = await consecutivePorts();
    swtpm = spawnProcess({
      name: 'swtpm',
      command: 'swtpm',
      args: ['socket', '--tpm2', '--server', `type=tcp,port=${port},bindaddr=127.0.0.1`, '--ctrl', `type=tcp,port=${ctrl},bindaddr=127.0.0.1`, '--tpmstate', `dir=${state}`, '--flags', 'not-need-init,startup-clear'],
    });
    await waitForPort(port, swtpm);
    tcti = `swtpm:host=127.0.0.1,port=${port}`;
  });
  afterAll(async () => {
    await swtpm?.stop();
    rmSync(state, { recursive: true, force: true });
  });

  it('--tcti, --ek-cert (raw NV with padding) and --ek-pub (tpm2_readpublic) agree', async () => {
    const env = { ...process.env, TPM2TOOLS_TCTI: tcti };
    await promisify(execFile)('tpm2_nvread', ['0x01c00002', '-o', path.join(state, 'ek.cert')], { env });
    await promisify(execFile)('tpm2_readpublic', ['-c', '0x81010001', '-o', path.join(state, 'ek.pub')], { env });
    const fromTpm = await cli(['--tcti', tcti]);
    expect(fromTpm.code).toBe(0);
    const fromCert = await cli(['--ek-cert', path.join(state, 'ek.cert'), '--json']);
    expect(fromCert.code).toBe(0);
    const cert = JSON.parse(fromCert.stdout) as { ekHash: string; tpmModel: string };
    expect(cert.tpmModel).toBe('swtpm');
    expect(`${cert.ekHash}\n`).toBe(fromTpm.stdout);
    expect((await cli(['--ek-pub', path.join(state, 'ek.pub')])).stdout).toBe(fromTpm.stdout);
    // No transient objects are left behind by --tcti.
    const handles = spawnSync('tpm2_getcap', ['handles-transient'], { env }).stdout.toString().trim();
    expect(handles).toBe('');
  });
});
