import { createPublicKey } from 'node:crypto';
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { startSwtpm, type RunningSwtpm } from '../swtpm.js';
import type { VtpmQuoteParts } from './evidence.js';

const run = promisify(execFile);

/** The persistent handle of Azure's vTPM attestation key (az-cvm-vtpm `VTPM_AK_HANDLE`). */
export const AZURE_VTPM_AK_HANDLE = '0x81000003';
/** The NV index Azure's paravisor writes the HCL report into. */
export const AZURE_HCL_REPORT_NV_INDEX = '0x01400001';
const PCR_SELECTION = `sha256:${Array.from({ length: 24 }, (_, i) => i).join(',')}`;

/**
 * A swtpm standing in for an Azure vTPM in tests: a real TPM with an RSA AK (RSASSA-SHA256, under
 * the EK, like tpm2_createak) persisted at 0x81000003, driven with tpm2-tools. It can quote and
 * write an HCL report into NV 0x01400001 — the paravisor's part, which no test can run for real.
 * swtpm (libtpms 0.9) caps NV indices at 2048 bytes, below Azure's 2600-byte reports, so only
 * reports up to that size fit.
 */
export interface SwtpmVtpm {
  readonly swtpm: RunningSwtpm;
  readonly tcti: string;
  /** The AK, DER SubjectPublicKeyInfo (RSA). */
  readonly akSpkiDer: Uint8Array;
  /** TPM2_Quote of SHA-256 PCRs 0-23 with `reportData` as qualifying data (raw RSA signature). */
  quote(reportData: Uint8Array): Promise<VtpmQuoteParts>;
  /** Define NV 0x01400001 (owner read/write) of the report's size and write the report. */
  writeHclReport(report: Uint8Array): Promise<void>;
  stop(): Promise<void>;
}

export async function startSwtpmVtpm(): Promise<SwtpmVtpm> {
  const swtpm = await startSwtpm();
  const work = await mkdtemp(join(tmpdir(), 'keyhold-vtpm-'));
  const tpm2 = async (...args: string[]): Promise<void> => {
    await run(args[0] as string, args.slice(1), { cwd: work, env: { ...process.env, TPM2TOOLS_TCTI: swtpm.tcti }, timeout: 30_000 });
  };
  const stop = async (): Promise<void> => {
    await swtpm.stop();
    await rm(work, { recursive: true, force: true });
  };
  try {
    await tpm2('tpm2_createek', '-c', 'ek.ctx', '-G', 'rsa', '-u', 'ek.pub');
    await tpm2('tpm2_flushcontext', '-t');
    await tpm2('tpm2_createak', '-C', 'ek.ctx', '-c', 'ak.ctx', '-G', 'rsa', '-g', 'sha256', '-s', 'rsassa', '-u', 'ak.pem', '-f', 'pem', '-n', 'ak.name');
    await tpm2('tpm2_flushcontext', '-t');
    await tpm2('tpm2_evictcontrol', '-C', 'o', '-c', 'ak.ctx', AZURE_VTPM_AK_HANDLE);
    await tpm2('tpm2_flushcontext', '-t');
    const akSpkiDer = new Uint8Array(createPublicKey(await readFile(join(work, 'ak.pem'))).export({ type: 'spki', format: 'der' }));
    return {
      swtpm,
      tcti: swtpm.tcti,
      akSpkiDer,
      async quote(reportData: Uint8Array): Promise<VtpmQuoteParts> {
        await tpm2('tpm2_quote', '-c', AZURE_VTPM_AK_HANDLE, '-l', PCR_SELECTION, '-q', Buffer.from(reportData).toString('hex'), '-m', 'msg', '-s', 'sig', '-f', 'plain');
        await tpm2('tpm2_pcrread', PCR_SELECTION, '-o', 'pcrs.raw');
        const raw = await readFile(join(work, 'pcrs.raw'));
        return {
          message: new Uint8Array(await readFile(join(work, 'msg'))),
          signature: new Uint8Array(await readFile(join(work, 'sig'))),
          pcrs: Array.from({ length: 24 }, (_, i) => new Uint8Array(raw.subarray(32 * i, 32 * i + 32))),
        };
      },
      async writeHclReport(report: Uint8Array): Promise<void> {
        await writeFile(join(work, 'hcl.bin'), report);
        await tpm2('tpm2_nvdefine', AZURE_HCL_REPORT_NV_INDEX, '-C', 'o', '-s', String(report.length), '-a', 'ownerread|ownerwrite|authread|authwrite');
        await tpm2('tpm2_nvwrite', AZURE_HCL_REPORT_NV_INDEX, '-C', 'o', '-i', 'hcl.bin');
      },
      stop,
    };
  } catch (err) {
    await stop();
    throw err;
  }
}
