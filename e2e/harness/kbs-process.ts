import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { freePort, spawnProcess, waitForPort, type SpawnedProcess } from '@keyhold/test-harness';
import { KBS_BIN } from './repo.js';
import { httpServerToml, type TlsPki } from './tls-pki.js';

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
  /**
   * Serve HTTPS with this PKI's server certificate (`[http_server]` is appended to the config).
   * Without it the KBS is started with `--insecure-http`: most e2e tests are about attestation, not
   * transport, and run on loopback; tls.test.ts covers HTTPS (the KBS's default) end to end.
   */
  tls?: Pick<TlsPki, 'serverCertFile' | 'serverKeyFile'>;
  /** Without `tls`: pass `--insecure-http` (default true; false when configToml sets [http_server] itself). */
  insecureHttp?: boolean;
}): Promise<KbsProcess> {
  const port = opts.port ?? (await freePort());
  const args = [KBS_BIN, 'serve', '--listen', `127.0.0.1:${port}`, '--data-dir', opts.dataDir, '--log-level', opts.logLevel ?? 'warn', ...(opts.extraArgs ?? [])];
  if (opts.adminPublicKeyFile !== undefined) args.push('--admin-public-key', opts.adminPublicKeyFile);
  if (opts.tls === undefined && opts.insecureHttp !== false) args.push('--insecure-http');
  const toml = [opts.configToml, opts.tls !== undefined ? httpServerToml(opts.tls) : undefined].filter((t) => t !== undefined).join('\n');
  if (toml !== '') {
    const file = join(opts.dataDir, '..', `kbs-${port}.toml`);
    await writeFile(file, toml);
    args.push('--config', file);
  }
  const proc = spawnProcess({ name: 'keyhold-kbs', command: process.execPath, args });
  await waitForPort(port, proc, { timeoutMs: 20_000 });
  return { url: `${opts.tls !== undefined ? 'https' : 'http'}://127.0.0.1:${port}`, port, dataDir: opts.dataDir, proc, stop: () => proc.stop() };
}
