/**
 * `keyhold-kbs serve --workers N`: N KBS processes on one host sharing one listening socket
 * (node:cluster; the primary hands connections to workers round-robin). Each worker is a complete
 * KBS on the shared state backend (Redis), so any request of a flow may land on any worker, as
 * with replicas on several hosts. The primary only supervises: it creates the generated token
 * signing key once before forking (so all workers sign with one key), prints the URL once every
 * worker listens, restarts a worker that dies (bounded), and stops them all on SIGINT/SIGTERM.
 * config.ts refuses N > 1 with embedded state (its data dir belongs to one process).
 */
import cluster, { type Worker } from 'node:cluster';
import { mkdir } from 'node:fs/promises';
import type { Logger } from 'pino';
import type { KbsConfig } from '../config.js';
import { generatedSigningKeyPath } from '../main.js';
import { loadOrCreateSigningKey } from '../signing-key.js';

/** Message a worker sends the primary once its server listens. */
export interface WorkerListening {
  readonly type: 'keyhold-kbs-listening';
  readonly url: string;
}

/** Restarts of crashed workers tolerated per minute before the primary gives up (crash loop). */
const MAX_RESTARTS_PER_MINUTE = 10;

export function isWorkerListening(m: unknown): m is WorkerListening {
  return typeof m === 'object' && m !== null && (m as { type?: unknown }).type === 'keyhold-kbs-listening' && typeof (m as { url?: unknown }).url === 'string';
}

/**
 * Run the cluster primary: fork `config.workers` workers (they re-run this binary with the same
 * arguments and serve), print the URL on stdout when all listen, resolve with the exit code once
 * stopped. `out` receives the URL line.
 */
export async function runWorkerPrimary(config: KbsConfig, logger: Logger, out: (line: string) => void): Promise<number> {
  // The data dir may not exist yet (a worker's startKbs would make it; the primary needs it first).
  await mkdir(config.dataDir, { recursive: true, mode: 0o700 });
  if (config.tokenSigningKeyFile === undefined) await loadOrCreateSigningKey(undefined, generatedSigningKeyPath(config));
  let stopping = false;
  let failed: number | undefined;
  const restarts: number[] = [];
  const listening = new Set<number>();
  let announced = false;
  let resolveDone!: (code: number) => void;
  const done = new Promise<number>((r) => (resolveDone = r));

  const stopAll = (code: number): void => {
    if (stopping) return;
    stopping = true;
    failed ??= code;
    const live = Object.values(cluster.workers ?? {}).filter((x): x is Worker => x !== undefined && !x.isDead());
    if (live.length === 0) resolveDone(failed);
    for (const x of live) x.process.kill('SIGTERM');
  };

  const fork = (): void => {
    const w = cluster.fork();
    w.on('message', (m: unknown) => {
      if (!isWorkerListening(m)) return;
      listening.add(w.id);
      if (!announced && listening.size >= config.workers) {
        announced = true;
        logger.info({ url: m.url, workers: config.workers }, 'keyhold-kbs workers listening');
        out(m.url);
      }
    });
  };

  cluster.on('exit', (w, code, signal) => {
    const wasListening = listening.delete(w.id);
    if (stopping) {
      if (Object.values(cluster.workers ?? {}).every((x) => x === undefined || x === w || x.isDead())) resolveDone(failed ?? 0);
      return;
    }
    if (!wasListening) {
      // A worker that could not start (bad config, Redis refused, port taken) will not do better on a retry.
      logger.error({ worker: w.id, code, signal }, 'a KBS worker exited before listening; stopping');
      stopAll(code === 2 ? 2 : 1);
      return;
    }
    const now = Date.now();
    while (restarts.length > 0 && now - restarts[0]! > 60_000) restarts.shift();
    if (restarts.length >= MAX_RESTARTS_PER_MINUTE) {
      logger.error({ worker: w.id }, 'KBS workers keep dying; stopping');
      stopAll(1);
      return;
    }
    restarts.push(now);
    logger.warn({ worker: w.id, code, signal }, 'a KBS worker died; starting another');
    fork();
  });

  // SIGHUP reaches the primary only: each worker reloads its own TLS material.
  process.on('SIGHUP', () => {
    for (const x of Object.values(cluster.workers ?? {})) if (x !== undefined && !x.isDead()) x.process.kill('SIGHUP');
  });
  process.once('SIGINT', () => stopAll(0));
  process.once('SIGTERM', () => stopAll(0));
  for (let i = 0; i < config.workers; i++) fork();
  return done;
}
