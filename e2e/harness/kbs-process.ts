import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { freePort, spawnProcess, waitForPort, type SpawnedProcess } from '@keyhold/test-harness';
import { KBS_BIN } from './repo.js';

export interface KbsProcess {
  url: string;
  port: number;
  dataDir: string;
  proc: SpawnedProcess;
  stop(): Promise<void>;
}

/** Start the built `keyhold-kbs serve` as its own process on a random loopback port. */
export async function startKbsProcess(opts: {
  dataDir: string;
  adminPublicKeyFile?: string;
  /** Extra config (TOML text) written to a file and passed with --config. */
  configToml?: string;
  logLevel?: string;
  /** Further `serve` flags (e.g. `--workers 2`). */
  extraArgs?: string[];
  /** Listen on this port (default: a free one). */
  port?: number;
}): Promise<KbsProcess> {
  const port = opts.port ?? (await freePort());
  const args = [KBS_BIN, 'serve', '--listen', `127.0.0.1:${port}`, '--data-dir', opts.dataDir, '--log-level', opts.logLevel ?? 'warn', ...(opts.extraArgs ?? [])];
  if (opts.adminPublicKeyFile !== undefined) args.push('--admin-public-key', opts.adminPublicKeyFile);
  if (opts.configToml !== undefined) {
    const file = join(opts.dataDir, '..', `kbs-${port}.toml`);
    await writeFile(file, opts.configToml);
    args.push('--config', file);
  }
  const proc = spawnProcess({ name: 'keyhold-kbs', command: process.execPath, args });
  await waitForPort(port, proc, { timeoutMs: 20_000 });
  return { url: `http://127.0.0.1:${port}`, port, dataDir: opts.dataDir, proc, stop: () => proc.stop() };
}
