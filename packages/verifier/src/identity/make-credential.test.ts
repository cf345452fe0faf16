// MakeCredential checked against a real TPM: swtpm + tpm2-tools run TPM2_ActivateCredential on
// the blob computed here, and must return the same secret. tpm2_makecredential (--tcti none)
// serves as a format cross-check.
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createServer } from 'node:net';
import { freePort, spawnProcess, waitForPort, type SpawnedProcess } from '@keyhold/test-harness';
import { parseTpm2bPublic } from '../tpm/public.js';
import { computeName } from '../tpm/name.js';
import { makeCredential } from './make-credential.js';
import { IdentityError } from './errors.js';

const run = promisify(execFile);
/** The swtpm TCTI always finds the control channel at port + 1, so the pair must be consecutive. */
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

const haveTools = existsSync('/usr/bin/swtpm_setup') && existsSync('/usr/bin/swtpm') && existsSync('/usr/bin/tpm2_activatecredential');

/** tpm2-tools credential file (tpm2_makecredential -o): u32 0xBADCC0DE, u32 version 1, TPM2B_ID_OBJECT, TPM2B_ENCRYPTED_SECRET. */
function tpm2ToolsCredentialFile(blob: Uint8Array, secret: Uint8Array): Uint8Array {
  return Buffer.concat([Buffer.from('badcc0de00000001', 'hex'), blob, secret]);
}

describe.skipIf(!haveTools)('makeCredential against swtpm (RSA and ECC EKs)', () => {
  let dir: string;
  let swtpm: SpawnedProcess;
  let env: NodeJS.ProcessEnv;

  const tpm = async (tool: string, ...args: string[]): Promise<string> => {
    const { stdout } = await run(tool, args, { env, cwd: dir });
    return stdout;
  };
  const flushAll = async (): Promise<void> => {
    await tpm('tpm2_flushcontext', '-t');
    await tpm('tpm2_flushcontext', '-s');
  };
  const activate = async (credFile: string, ek = 'ek.ctx', sessionHash = 'sha256'): Promise<Buffer> => {
    await tpm('tpm2_startauthsession', '--policy-session', '-g', sessionHash, '-S', 'session.ctx');
    await tpm('tpm2_policysecret', '-S', 'session.ctx', '-c', 'e');
    try {
      await tpm('tpm2_activatecredential', '-c', 'ak.ctx', '-C', ek, '-i', credFile, '-o', 'actcred.out', '-P', 'session:session.ctx');
      return await readFile(path.join(dir, 'actcred.out'));
    } finally {
      await flushAll();
    }
  };

  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'keyhold-mkcred-'));
    // Manufacture the TPM as swtpm_setup does: persistent RSA-2048 EK at 0x81010001 and an
    // ECC P-384 EK (TCG high-range template: SHA-384 nameAlg, AES-256-CFB) at 0x81010016.
    await run('swtpm_setup', ['--tpm2', '--tpmstate', dir, '--createek', '--overwrite']);
    const [port, ctrl] = await consecutivePorts();
    swtpm = spawnProcess({
      name: 'swtpm',
      command: 'swtpm',
      args: ['socket', '--tpm2', '--server', `type=tcp,port=${port},bindaddr=127.0.0.1`, '--ctrl', `type=tcp,port=${ctrl},bindaddr=127.0.0.1`,
        '--tpmstate', `dir=${dir}`, '--flags', 'not-need-init,startup-clear'],
    });
    await waitForPort(port, swtpm);
    env = { ...process.env, TPM2TOOLS_TCTI: `swtpm:host=127.0.0.1,port=${port}` };
  });

  afterAll(async () => {
    await swtpm?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  for (const alg of ['rsa', 'ecc'] as const) {
    it(`activates a TypeScript-made credential with a ${alg.toUpperCase()} EK`, async () => {
      await tpm('tpm2_createek', '-c', 'ek.ctx', '-G', alg, '-u', 'ek.pub');
      await tpm('tpm2_createak', '-C', 'ek.ctx', '-c', 'ak.ctx', '-G', 'rsa', '-g', 'sha256', '-s', 'rsassa', '-u', 'ak.pub', '-n', 'ak.name');
      await flushAll();
      const ek = parseTpm2bPublic(await readFile(path.join(dir, 'ek.pub')));
      expect(ek.type).toBe(alg);
      const ak = parseTpm2bPublic(await readFile(path.join(dir, 'ak.pub')));
      const akName = computeName(ak.tpmtPublic);
      expect(Buffer.from(akName)).toEqual(await readFile(path.join(dir, 'ak.name')));

      const secret = randomBytes(32);
      const made = makeCredential(ek, akName, secret);
      await writeFile(path.join(dir, 'cred.out'), tpm2ToolsCredentialFile(made.credentialBlob, made.secret));
      expect(await activate('cred.out')).toEqual(secret);

      // Format cross-check: tpm2-tools' own software MakeCredential opens the same way and its
      // file has the same header and the same structure sizes as ours.
      await writeFile(path.join(dir, 'secret.bin'), secret);
      await tpm('tpm2_makecredential', '--tcti', 'none', '-e', 'ek.pub', '-s', 'secret.bin', '-n', Buffer.from(akName).toString('hex'), '-o', 'cred2.out');
      const theirs = await readFile(path.join(dir, 'cred2.out'));
      const ours = await readFile(path.join(dir, 'cred.out'));
      expect(theirs.subarray(0, 8)).toEqual(ours.subarray(0, 8));
      expect(theirs.length).toBe(ours.length);
      expect(await activate('cred2.out')).toEqual(secret);

      // Negative: a credential bound to another object's name must not activate with this AK.
      const otherName = Uint8Array.from(akName);
      otherName[5] = (otherName[5] as number) ^ 0x01;
      const wrong = makeCredential(ek, otherName, secret);
      await writeFile(path.join(dir, 'cred3.out'), tpm2ToolsCredentialFile(wrong.credentialBlob, wrong.secret));
      await expect(activate('cred3.out')).rejects.toThrow();

      // Negative: a flipped bit in encIdentity fails the TPM's integrity check.
      const tampered = Uint8Array.from(made.credentialBlob);
      tampered[tampered.length - 1] = (tampered[tampered.length - 1] as number) ^ 0x80;
      await writeFile(path.join(dir, 'cred4.out'), tpm2ToolsCredentialFile(tampered, made.secret));
      await expect(activate('cred4.out')).rejects.toThrow();

      // Input checks: an AK (signing key) cannot be used as the protecting key; oversized or
      // empty credentials and malformed names are refused before any crypto.
      const code = (f: () => unknown): string | undefined => {
        try {
          f();
        } catch (e) {
          return e instanceof IdentityError ? e.code : 'other';
        }
        return undefined;
      };
      expect(code(() => makeCredential(ak, akName, secret))).toBe('CREDENTIAL_INPUT_INVALID');
      expect(code(() => makeCredential(ek, akName, randomBytes(33)))).toBe('CREDENTIAL_INPUT_INVALID');
      expect(code(() => makeCredential(ek, akName, new Uint8Array(0)))).toBe('CREDENTIAL_INPUT_INVALID');
      expect(code(() => makeCredential(ek, akName.subarray(0, 20), secret))).toBe('CREDENTIAL_INPUT_INVALID');
      expect(code(() => makeCredential(ek, Uint8Array.of(0x12, 0x34, ...akName.subarray(2)), secret))).toBe('CREDENTIAL_INPUT_INVALID');
    });
  }

  it('activates with an ECC P-384 storage key shaped like the TCG high-range EK (SHA-384 nameAlg, AES-256-CFB)', async () => {
    // swtpm_setup's P-384 EK (0x81010016) has the high-range PolicyOR authPolicy, which needs a
    // PolicyOR session the agent builds; here a primary with the same template but password auth
    // isolates what this module owns: KDFe/KDFa with SHA-384, AES-256-CFB and the P-384 point.
    await tpm('tpm2_readpublic', '-c', '0x81010016', '-o', 'ek384-real.pub');
    const real = parseTpm2bPublic(await readFile(path.join(dir, 'ek384-real.pub')));
    expect(real.type === 'ecc' && real.parameters.curve).toBe('NIST_P384');
    expect(real.nameAlg).toBe('sha384');
    expect(real.parameters.symmetric).toEqual({ algorithm: 'aes', keyBits: 256, mode: 'cfb' });
    await tpm('tpm2_createprimary', '-C', 'e', '-G', 'ecc384:aes256cfb', '-g', 'sha384', '-a', 'fixedtpm|fixedparent|sensitivedataorigin|userwithauth|restricted|decrypt', '-c', 'ek384.ctx', '-o', 'ek384.pem', '-f', 'pem');
    await tpm('tpm2_readpublic', '-c', 'ek384.ctx', '-o', 'ek384.pub');
    await flushAll(); // swtpm has 3 transient slots; every context load takes one
    await tpm('tpm2_create', '-C', 'ek384.ctx', '-G', 'ecc256:ecdsa-sha256:null', '-a', 'fixedtpm|fixedparent|sensitivedataorigin|userwithauth|restricted|sign', '-u', 'ak384.pub', '-r', 'ak384.priv');
    await flushAll();
    await tpm('tpm2_load', '-C', 'ek384.ctx', '-u', 'ak384.pub', '-r', 'ak384.priv', '-c', 'ak.ctx', '-n', 'ak.name');
    await flushAll();
    const ek = parseTpm2bPublic(await readFile(path.join(dir, 'ek384.pub')));
    expect(ek.nameAlg).toBe('sha384');
    const akName = computeName(parseTpm2bPublic(await readFile(path.join(dir, 'ak384.pub'))).tpmtPublic);
    expect(Buffer.from(akName)).toEqual(await readFile(path.join(dir, 'ak.name')));
    const secret = randomBytes(48);
    const made = makeCredential(ek, akName, secret);
    await writeFile(path.join(dir, 'cred384.out'), tpm2ToolsCredentialFile(made.credentialBlob, made.secret));
    try {
      await tpm('tpm2_activatecredential', '-c', 'ak.ctx', '-C', 'ek384.ctx', '-i', 'cred384.out', '-o', 'act384.out');
    } finally {
      await flushAll();
    }
    expect(await readFile(path.join(dir, 'act384.out'))).toEqual(secret);
    // A 49-byte credential exceeds the SHA-384 digest size.
    expect(() => makeCredential(ek, akName, randomBytes(49))).toThrow(IdentityError);
  });
});
