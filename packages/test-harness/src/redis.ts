import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { freePort, freePorts, spawnProcess, waitForPort, type SpawnedProcess } from './process-launcher.js';

const run = promisify(execFile);

export interface RedisServer {
  readonly url: string;
  readonly host: string;
  readonly port: number;
  /** PID of the current redis-server process (changes after restart()). */
  readonly pid: number | undefined;
  /** Stop gracefully (SIGTERM), remove the temp dir. Safe to call twice. */
  stop(): Promise<void>;
  /** SIGKILL the server (for fault tests); the temp dir stays so restart() can reuse it. */
  kill(): Promise<void>;
  /** Start a new redis-server on the same port (after kill() or stop()). */
  restart(): Promise<void>;
}

export interface StartRedisOptions {
  /** Port to listen on (default: a free loopback port). */
  readonly port?: number;
  /** Extra redis-server arguments. */
  readonly args?: readonly string[];
}

const REDIS_SERVER = 'redis-server';
const REDIS_CLI = 'redis-cli';

function baseArgs(port: number, dir: string): string[] {
  return ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir, '--protected-mode', 'yes'];
}

/** Start a standalone redis-server on 127.0.0.1 with no persistence, in a temp dir. */
export async function startRedis(options: StartRedisOptions = {}): Promise<RedisServer> {
  const port = options.port ?? (await freePort());
  const dir = await mkdtemp(path.join(os.tmpdir(), 'kh-redis-'));
  let proc: SpawnedProcess | undefined;
  let removed = false;
  const launch = async (): Promise<void> => {
    proc = spawnProcess({ name: `redis-server:${port}`, command: REDIS_SERVER, args: [...baseArgs(port, dir), ...(options.args ?? [])] });
    await waitForPort(port, proc);
  };
  await launch();
  return {
    url: `redis://127.0.0.1:${port}`,
    host: '127.0.0.1',
    port,
    get pid() {
      return proc?.pid;
    },
    async stop() {
      await proc?.stop();
      if (!removed) {
        removed = true;
        await rm(dir, { recursive: true, force: true });
      }
    },
    async kill() {
      const p = proc;
      if (p === undefined) return;
      if (p.child.exitCode === null && p.child.signalCode === null) p.child.kill('SIGKILL');
      await p.exited;
      await p.stop();
    },
    async restart() {
      await proc?.stop();
      await launch();
    },
  };
}

export interface RedisClusterNode {
  readonly host: string;
  readonly port: number;
  /** Cluster bus port (set explicitly so it never overflows port + 10000). */
  readonly busPort: number;
  readonly pid: number | undefined;
}

export interface RedisCluster {
  readonly nodes: readonly RedisClusterNode[];
  /** Stop every node and remove the temp dir. Safe to call twice. */
  stop(): Promise<void>;
  /** SIGKILL every node (for fault tests); node configs stay so restart() can bring them back. */
  kill(): Promise<void>;
  /** Restart every node on its ports with its saved cluster config; wait for cluster_state:ok. */
  restart(): Promise<void>;
}

/**
 * Start a Redis Cluster of `masters` redis-server processes (no replicas) on loopback, created with
 * `redis-cli --cluster create`, and wait until every node reports cluster_state:ok.
 */
export async function startRedisCluster(options: { masters?: number; timeoutMs?: number; /** Extra redis-server arguments for every node (e.g. AOF). */ args?: readonly string[] } = {}): Promise<RedisCluster> {
  const masters = options.masters ?? 3;
  const timeoutMs = options.timeoutMs ?? 30_000;
  if (!Number.isInteger(masters) || masters < 3) throw new TypeError('a Redis Cluster needs at least 3 masters');
  const dir = await mkdtemp(path.join(os.tmpdir(), 'kh-redis-cluster-'));
  const ports = await freePorts(masters * 2);
  const procs: SpawnedProcess[] = [];
  const nodes: RedisClusterNode[] = [];
  let stopped = false;
  const stop = async (): Promise<void> => {
    if (stopped) return;
    stopped = true;
    await Promise.all(procs.map((p) => p.stop()));
    await rm(dir, { recursive: true, force: true });
  };
  const launch = (i: number): SpawnedProcess => {
    const port = ports[i] as number;
    const proc = spawnProcess({
      name: `redis-cluster:${port}`,
      command: REDIS_SERVER,
      args: [
        ...baseArgs(port, dir),
        '--cluster-enabled', 'yes',
        '--cluster-port', String(ports[masters + i]),
        '--cluster-config-file', `nodes-${port}.conf`,
        '--cluster-node-timeout', '2000',
        // Nodes share the temp dir: per-node persistence file names (used when args turn AOF on).
        '--appenddirname', `appendonlydir-${port}`,
        '--dbfilename', `dump-${port}.rdb`,
        ...(options.args ?? []),
      ],
    });
    procs[i] = proc;
    return proc;
  };
  const waitOk = async (): Promise<void> => {
    const deadline = Date.now() + timeoutMs;
    for (const n of nodes) {
      for (;;) {
        const { stdout } = await run(REDIS_CLI, ['-h', '127.0.0.1', '-p', String(n.port), 'cluster', 'info'], { timeout: 5_000 });
        if (/cluster_state:ok/.test(stdout) && /cluster_known_nodes:(\d+)/.exec(stdout)?.[1] === String(masters)) break;
        if (Date.now() > deadline) throw new Error(`redis cluster node ${n.port} not ok within ${timeoutMs} ms:\n${stdout}`);
        await new Promise((r) => setTimeout(r, 100));
      }
    }
  };
  try {
    for (let i = 0; i < masters; i++) {
      launch(i);
      nodes.push({
        host: '127.0.0.1',
        port: ports[i] as number,
        busPort: ports[masters + i] as number,
        get pid() {
          return procs[i]?.pid;
        },
      });
    }
    await Promise.all(procs.map((p, i) => waitForPort(nodes[i]?.port as number, p)));
    await run(REDIS_CLI, ['--cluster', 'create', ...nodes.map((n) => `127.0.0.1:${n.port}`), '--cluster-replicas', '0', '--cluster-yes'], {
      timeout: timeoutMs,
    });
    await waitOk();
  } catch (err) {
    await stop();
    throw err;
  }
  return {
    nodes,
    stop,
    async kill() {
      await Promise.all(
        procs.map(async (p) => {
          if (p.child.exitCode === null && p.child.signalCode === null) p.child.kill('SIGKILL');
          await p.exited;
          await p.stop();
        }),
      );
    },
    async restart() {
      await Promise.all(procs.map((p) => p.stop()));
      await Promise.all(nodes.map((n, i) => waitForPort(n.port, launch(i))));
      await waitOk();
    },
  };
}
