import { readFile } from 'node:fs/promises';
import { spawnProcess, type SpawnedProcess } from '@keyhold/test-harness';
import { AGENT_BIN } from './repo.js';
import { http } from './raw-flow.js';

/** `keyhold-agent run` as its own process, with its health endpoint and status file. */
export interface AgentDaemon {
  readonly proc: SpawnedProcess;
  readonly healthUrl: string;
  readonly statusFile: string;
  /** The status file's JSON (undefined while absent or being replaced). */
  status(): Promise<Record<string, any> | undefined>;
  /** GET /health: the HTTP status and the JSON. */
  health(): Promise<{ code: number; json: Record<string, any> }>;
  /** The daemon's log lines (pino JSON) so far. */
  logs(): Record<string, any>[];
  /** SIGTERM, and the exit code. */
  stop(): Promise<number | null>;
}

export async function startAgentDaemon(args: string[], statusFile: string): Promise<AgentDaemon> {
  const proc = spawnProcess({
    name: 'keyhold-agent run',
    command: process.execPath,
    args: [AGENT_BIN, 'run', '--health-listen', '127.0.0.1:0', '--status-file', statusFile, ...args],
    killTimeoutMs: 15_000,
  });
  let stdout = '';
  proc.child.stdout?.on('data', (b: Buffer) => (stdout += b.toString()));
  const healthUrl = await new Promise<string>((resolve, reject) => {
    const deadline = setTimeout(() => reject(new Error(`keyhold-agent run printed no health URL:\n${proc.output()}`)), 30_000);
    const check = setInterval(() => {
      const m = /^(http:\/\/127\.0\.0\.1:\d+\/health)$/m.exec(stdout);
      if (m !== null) {
        clearInterval(check);
        clearTimeout(deadline);
        resolve(m[1] as string);
      }
    }, 50);
    void proc.exited.then((code) => {
      clearInterval(check);
      clearTimeout(deadline);
      reject(new Error(`keyhold-agent run exited (${code}):\n${proc.output()}`));
    });
  });
  return {
    proc,
    healthUrl,
    statusFile,
    async status() {
      try {
        return JSON.parse(await readFile(statusFile, 'utf8')) as Record<string, any>;
      } catch {
        return undefined;
      }
    },
    async health() {
      const r = await http(healthUrl);
      return { code: r.status, json: r.json as Record<string, any> };
    },
    logs() {
      return proc
        .output()
        .split('\n')
        .filter((l) => l.startsWith('{'))
        .map((l) => {
          try {
            return JSON.parse(l) as Record<string, any>;
          } catch {
            return {};
          }
        });
    },
    async stop() {
      await proc.stop();
      return proc.exited;
    },
  };
}
