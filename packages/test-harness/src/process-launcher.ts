import { spawn, type ChildProcess } from 'node:child_process';
import { createServer, connect } from 'node:net';

/**
 * A server that a test started and must stop. Launchers hide *how* a service runs
 * (a local process here; a container launcher could implement the same interface where a
 * container engine exists, but none is shipped because none can be tested on these machines).
 */
export interface RunningService {
  readonly name: string;
  /** PID of the local process (undefined for launchers that do not run one). */
  readonly pid: number | undefined;
  /** Stop the service and wait until it has exited. Safe to call twice. */
  stop(): Promise<void>;
}

export interface SpawnedProcess extends RunningService {
  readonly child: ChildProcess;
  /** Everything the process wrote to stdout and stderr so far (for failure messages). */
  output(): string;
  /** Resolves when the process exits. */
  readonly exited: Promise<number | null>;
}

/** Ask the kernel for a free loopback TCP port. */
export async function freePort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, host, () => {
      const addr = srv.address();
      if (addr === null || typeof addr === 'string') {
        srv.close();
        reject(new Error('no port'));
        return;
      }
      const { port } = addr;
      srv.close(() => resolve(port));
    });
  });
}

/** Two free ports that are consecutive-free-independent (swtpm needs a server and a control port). */
export async function freePorts(count: number, host = '127.0.0.1'): Promise<number[]> {
  const ports = new Set<number>();
  while (ports.size < count) ports.add(await freePort(host));
  return [...ports];
}

export interface SpawnOptions {
  name: string;
  command: string;
  args: string[];
  cwd?: string;
  env?: NodeJS.ProcessEnv;
  /** Signal used by stop(); SIGKILL follows after killTimeoutMs. */
  stopSignal?: NodeJS.Signals;
  killTimeoutMs?: number;
}

const live = new Set<SpawnedProcess>();
process.once('exit', () => {
  for (const p of live) {
    try {
      if (p.pid !== undefined) process.kill(p.pid, 'SIGKILL');
    } catch {
      /* already gone */
    }
  }
});

/** Spawn a process, capture its output, and stop it by PID. */
export function spawnProcess(opts: SpawnOptions): SpawnedProcess {
  const child = spawn(opts.command, opts.args, {
    cwd: opts.cwd,
    env: opts.env ?? process.env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  const append = (b: Buffer): void => {
    out += b.toString('utf8');
    if (out.length > 200_000) out = out.slice(-100_000);
  };
  child.stdout?.on('data', append);
  child.stderr?.on('data', append);
  const exited = new Promise<number | null>((resolve) => {
    child.once('exit', (code) => resolve(code));
    child.once('error', (err) => {
      out += `\nspawn error: ${err.message}`;
      resolve(-1);
    });
  });
  let stopping: Promise<void> | undefined;
  const proc: SpawnedProcess = {
    name: opts.name,
    pid: child.pid,
    child,
    exited,
    output: () => out,
    stop() {
      stopping ??= (async () => {
        if (child.exitCode === null && child.signalCode === null) {
          child.kill(opts.stopSignal ?? 'SIGTERM');
          const timer = setTimeout(() => child.kill('SIGKILL'), opts.killTimeoutMs ?? 5_000);
          await exited;
          clearTimeout(timer);
        }
        live.delete(proc);
      })();
      return stopping;
    },
  };
  live.add(proc);
  return proc;
}

/** Wait until a TCP port accepts connections, or the process dies, or the deadline passes. */
export async function waitForPort(
  port: number,
  proc: SpawnedProcess,
  { host = '127.0.0.1', timeoutMs = 15_000 }: { host?: string; timeoutMs?: number } = {},
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let dead = false;
  void proc.exited.then(() => {
    dead = true;
  });
  while (Date.now() < deadline) {
    if (dead) throw new Error(`${proc.name} exited before listening on ${port}:\n${proc.output()}`);
    const ok = await new Promise<boolean>((resolve) => {
      const s = connect({ host, port }, () => {
        s.destroy();
        resolve(true);
      });
      s.on('error', () => resolve(false));
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`${proc.name} did not listen on ${host}:${port} within ${timeoutMs} ms:\n${proc.output()}`);
}
