import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { createServer } from 'node:net';
import { isAbsolute, join } from 'node:path';
import { promisify } from 'node:util';
import { freePort, spawnProcess, waitForPort } from './process-launcher.js';

const run = promisify(execFile);

/** Where swtpm_setup's local CA (swtpm_localca, /etc/swtpm-localca.conf) keeps its certificates. */
export const SWTPM_LOCALCA_DIR = '/var/lib/swtpm-localca';
/** The local CA's root certificate (self-signed) and the intermediate that signs EK certificates. */
export const SWTPM_LOCALCA_ROOT_CERT = join(SWTPM_LOCALCA_DIR, 'swtpm-localca-rootca-cert.pem');
export const SWTPM_LOCALCA_ISSUER_CERT = join(SWTPM_LOCALCA_DIR, 'issuercert.pem');

export interface StartSwtpmOptions {
  /** Absolute TPM state directory; a fresh temporary directory (removed by stop()) by default. */
  stateDir?: string;
  /**
   * Manufacture the TPM with swtpm_setup first: EKs, EK certificates in NV (RSA 2048 at 0x01c00002;
   * swtpm 0.7 puts its ECC EK certificate, NIST P-384, at 0x01c00016), a platform certificate, NV
   * locked. Certificates are signed by the local CA under {@link SWTPM_LOCALCA_DIR}.
   */
  ekCert?: boolean;
  /** With ekCert: also create an ECC storage primary key (`swtpm_setup --ecc`). */
  ecc?: boolean;
}

export interface RunningSwtpm {
  /** TCTI string for tpm2-tss / tpm2-tools (TPM2TOOLS_TCTI). */
  readonly tcti: string;
  readonly port: number;
  readonly ctrlPort: number;
  readonly stateDir: string;
  readonly pid: number | undefined;
  /** Stop swtpm by PID (and remove the state directory if it was a temporary one). */
  stop(): Promise<void>;
}

function portIsFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = createServer();
    srv.once('error', () => resolve(false));
    srv.listen(port, '127.0.0.1', () => srv.close(() => resolve(true)));
  });
}

/**
 * Two consecutive free ports: tpm2-tss's `swtpm` TCTI always talks to the control channel on the
 * command port + 1, so swtpm must listen there.
 */
async function consecutivePorts(): Promise<[number, number]> {
  for (let i = 0; i < 50; i++) {
    const p = await freePort();
    if (p < 65535 && (await portIsFree(p + 1))) return [p, p + 1];
  }
  throw new Error('no two consecutive free ports found');
}

/** Start a software TPM 2.0 (swtpm) on loopback TCP ports, started with TPM2_Startup(CLEAR). */
export async function startSwtpm(options: StartSwtpmOptions = {}): Promise<RunningSwtpm> {
  if (options.stateDir !== undefined && !isAbsolute(options.stateDir)) {
    throw new TypeError('stateDir must be an absolute path');
  }
  const ownDir = options.stateDir === undefined;
  const stateDir = options.stateDir ?? (await mkdtemp(join(tmpdir(), 'keyhold-swtpm-')));
  try {
    if (options.ekCert === true) {
      const args = [
        '--tpm2',
        '--tpmstate',
        stateDir,
        '--create-ek-cert',
        '--create-platform-cert',
        '--lock-nvram',
        '--overwrite',
        '--config',
        '/etc/swtpm_setup.conf',
      ];
      if (options.ecc === true) args.push('--ecc');
      try {
        await run('swtpm_setup', args, { timeout: 60_000 });
      } catch (err) {
        const e = err as { stderr?: string; stdout?: string; message: string };
        throw new Error(`swtpm_setup failed: ${e.message}\n${e.stdout ?? ''}${e.stderr ?? ''}`, { cause: err });
      }
    }
    const [port, ctrlPort] = await consecutivePorts();
    const proc = spawnProcess({
      name: 'swtpm',
      command: 'swtpm',
      args: [
        'socket',
        '--tpm2',
        '--tpmstate',
        `dir=${stateDir}`,
        '--server',
        `type=tcp,port=${port},bindaddr=127.0.0.1`,
        '--ctrl',
        `type=tcp,port=${ctrlPort},bindaddr=127.0.0.1`,
        '--flags',
        'not-need-init,startup-clear',
      ],
    });
    try {
      await waitForPort(port, proc);
      await waitForPort(ctrlPort, proc);
    } catch (err) {
      await proc.stop();
      throw err;
    }
    return {
      tcti: `swtpm:host=127.0.0.1,port=${port}`,
      port,
      ctrlPort,
      stateDir,
      pid: proc.pid,
      async stop() {
        await proc.stop();
        if (ownDir) await rm(stateDir, { recursive: true, force: true });
      },
    };
  } catch (err) {
    if (ownDir) await rm(stateDir, { recursive: true, force: true });
    throw err;
  }
}

/**
 * PCR values in the file format `tpm2_quote -o` writes and `tpm2_checkquote -f` reads (tpm2-tools 5.x,
 * little-endian C layout): TPML_PCR_SELECTION (132 bytes), a u32 count of TPML_DIGEST, then each
 * TPML_DIGEST (u32 count, 8 x {u16 size, 64-byte buffer}). tpm2_checkquote 5.4 fails with raw values
 * plus `-l` for more than 8 PCRs, so this format is used.
 */
export function tpm2ToolsPcrFile(hashAlg: number, values: readonly Uint8Array[]): Buffer {
  if (values.length === 0 || values.length > 24) throw new TypeError('1..24 PCR values');
  const sel = Buffer.alloc(132);
  sel.writeUInt32LE(1, 0);
  sel.writeUInt16LE(hashAlg, 4);
  sel[6] = 3;
  for (let i = 0; i < values.length; i++) sel[7 + (i >> 3)]! |= 1 << (i & 7);
  const lists: Buffer[] = [];
  for (let i = 0; i < values.length; i += 8) {
    const chunk = values.slice(i, i + 8);
    const l = Buffer.alloc(4 + 8 * 66);
    l.writeUInt32LE(chunk.length, 0);
    chunk.forEach((v, j) => {
      l.writeUInt16LE(v.length, 4 + j * 66);
      l.set(v, 6 + j * 66);
    });
    lists.push(l);
  }
  const count = Buffer.alloc(4);
  count.writeUInt32LE(lists.length);
  return Buffer.concat([sel, count, ...lists]);
}
