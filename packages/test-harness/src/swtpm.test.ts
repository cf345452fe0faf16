import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { startSwtpm, SWTPM_LOCALCA_ISSUER_CERT, SWTPM_LOCALCA_ROOT_CERT } from './swtpm.js';

const run = promisify(execFile);

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe('startSwtpm', () => {
  it('starts a TPM reachable through its TCTI string and stops it by PID', async () => {
    const tpm = await startSwtpm();
    try {
      expect(tpm.tcti).toBe(`swtpm:host=127.0.0.1,port=${tpm.port}`);
      expect(tpm.ctrlPort).toBe(tpm.port + 1);
      const { stdout } = await run('tpm2_getrandom', ['--hex', '8'], { env: { ...process.env, TPM2TOOLS_TCTI: tpm.tcti } });
      expect(stdout).toMatch(/^[0-9a-f]{16}$/);
    } finally {
      await tpm.stop();
    }
    expect(alive(tpm.pid!)).toBe(false);
    expect(existsSync(tpm.stateDir)).toBe(false);
  });

  it('manufactures EK certificates (RSA and ECC) into a caller-owned state directory', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'keyhold-swtpm-harness-'));
    const tpm = await startSwtpm({ stateDir: dir, ekCert: true, ecc: true });
    try {
      const { stdout } = await run('tpm2_getcap', ['handles-nv-index'], { env: { ...process.env, TPM2TOOLS_TCTI: tpm.tcti } });
      expect(stdout).toContain('0x1C00002');
      expect(stdout).toContain('0x1C00016');
      expect(existsSync(SWTPM_LOCALCA_ISSUER_CERT) && existsSync(SWTPM_LOCALCA_ROOT_CERT)).toBe(true);
    } finally {
      await tpm.stop();
    }
    expect(existsSync(dir)).toBe(true);
    await rm(dir, { recursive: true, force: true });
  });

  it('refuses a relative state directory', async () => {
    await expect(startSwtpm({ stateDir: 'relative/dir' })).rejects.toBeInstanceOf(TypeError);
  });
});
