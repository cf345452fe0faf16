/**
 * `keyhold-agent run`: the attestation daemon. Checks that the TPM can be opened, then runs
 * {@link runDaemon} until SIGINT/SIGTERM (or `opts.signal`) with a TPM session per cycle, publishing
 * its status to the health endpoint and the status file. On the way out it cuts the KBS connections
 * of a cycle in flight, lets that cycle end (its TPM work is bounded), marks the status `stopped`,
 * flushes the TPM's transient handles and closes the client, and releases --node-cert-dir's lock.
 */
import { AtomicFileError } from '@keyhold/atomic-file';
import type { CliIo } from '@keyhold/command-line';
import type { AgentConfig } from '../config.js';
import { AgentError } from '../errors.js';
import type { SessionOpener } from '../node-commands.js';
import { NodeCertificates } from '../node-cert/node-certificates.js';
import { initialStatus, type AttestationStatus } from './attestation-status.js';
import { CycleSession, openGrantClient } from './cycle-session.js';
import { daemonConfigFrom, type DaemonFlags } from './daemon-config.js';
import { startHealthServer, type HealthServer } from './health-server.js';
import type { ResourceSocket } from '../resource-socket/server.js';
import { runDaemon } from './run-daemon.js';
import { writeStatusFile } from './status-file.js';

export async function runAttestationDaemon(flags: DaemonFlags, config: AgentConfig, io: CliIo, opener: SessionOpener, opts: { signal?: AbortSignal } = {}): Promise<number> {
  const daemon = daemonConfigFrom(flags);
  const { createCliLogger } = await import('@keyhold/command-line/logger');
  const log = await createCliLogger({ level: daemon.logLevel, stream: io.stderr });

  const controller = new AbortController();
  const stop = (): void => controller.abort();
  opts.signal?.addEventListener('abort', stop, { once: true });
  if (opts.signal === undefined) {
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
  }

  let certs: NodeCertificates | undefined;
  let session: CycleSession | undefined;
  let health: HealthServer | undefined;
  let resources: ResourceSocket | undefined;
  let current: AttestationStatus = initialStatus(Date.now());
  try {
    if (daemon.nodeCertDir !== undefined) {
      try {
        certs = await NodeCertificates.open({ dir: daemon.nodeCertDir, deleteKeyOnBan: daemon.deleteKeyOnBan });
      } catch (err) {
        if (err instanceof AtomicFileError && err.code === 'DIR_LOCKED') {
          throw new AgentError('NODE_CERT_FILES', `--node-cert-dir ${daemon.nodeCertDir} is in use by another keyhold-agent (pid ${err.holderPid ?? '?'})`, { cause: err });
        }
        throw err;
      }
    }
    const held = certs;
    const open = () => opener(config, held !== undefined ? { additionalEvidence: () => held.additionalEvidence() } : {});
    // Opened once here so that a TPM that cannot be reached at all fails the start (exit 1); then
    // per cycle (cycle-session.ts).
    const grantClient = daemon.resourceSocket !== undefined ? await openGrantClient(config) : undefined;
    session = new CycleSession(open, await open(), grantClient !== undefined ? { grantClient } : {});
    const cycles = session;
    controller.signal.addEventListener('abort', () => cycles.abort(), { once: true });
    if (daemon.healthListen !== undefined) {
      health = await startHealthServer(daemon.healthListen, () => current);
      io.stdout.write(`${health.url}\n`);
    }
    if (daemon.resourceSocket !== undefined) {
      const { startResourceSocket } = await import('../resource-socket/server.js');
      resources = await startResourceSocket({ path: daemon.resourceSocket, log, fetch: (r) => cycles.getResource(r, r.version !== undefined ? { version: r.version } : {}) });
    }
    log.info(
      {
        kbs: config.url,
        tcti: config.tcti,
        intervalMs: daemon.intervalMs,
        ...(daemon.nodeCertDir !== undefined ? { nodeCertDir: daemon.nodeCertDir, spkiSha256: certs?.key?.spkiSha256 } : {}),
        ...(health !== undefined ? { health: health.url } : {}),
        ...(daemon.statusFile !== undefined ? { statusFile: daemon.statusFile } : {}),
        ...(resources !== undefined ? { resourceSocket: resources.path } : {}),
      },
      'keyhold-agent run: started',
    );
    const statusFile = daemon.statusFile;
    await runDaemon({
      intervalMs: daemon.intervalMs,
      kbs: session,
      certs,
      log,
      signal: controller.signal,
      publish: async (s) => {
        current = s;
        if (statusFile === undefined) return;
        try {
          await writeStatusFile(statusFile, s, { pid: process.pid });
        } catch (err) {
          log.error({ file: statusFile, code: (err as { code?: unknown }).code }, 'could not write the status file (removed it)');
        }
      },
    });
    log.info({}, 'keyhold-agent run: stopped');
    return 0;
  } finally {
    process.off('SIGINT', stop);
    process.off('SIGTERM', stop);
    opts.signal?.removeEventListener('abort', stop);
    await health?.close();
    await resources?.close();
    // Requests still fetching end first (their KBS connections were cut), then the TPM is flushed.
    session?.abort();
    await session?.shutdown();
    await certs?.close();
  }
}
