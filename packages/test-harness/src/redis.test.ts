import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { startRedis, startRedisCluster } from './redis.js';

const run = promisify(execFile);
const cli = async (port: number, ...args: string[]): Promise<string> =>
  (await run('redis-cli', ['-h', '127.0.0.1', '-p', String(port), ...args], { timeout: 5_000 })).stdout.trim();

describe('startRedis', () => {
  it('starts on a loopback port, survives SIGKILL + restart on the same port, and stops', async () => {
    const r = await startRedis();
    try {
      expect(r.url).toBe(`redis://127.0.0.1:${r.port}`);
      expect(await cli(r.port, 'ping')).toBe('PONG');
      expect(await cli(r.port, 'config', 'get', 'appendonly')).toContain('no');
      const pid = r.pid;
      await r.kill();
      await expect(cli(r.port, 'ping')).rejects.toThrow();
      await r.restart();
      expect(r.pid).not.toBe(pid);
      expect(await cli(r.port, 'ping')).toBe('PONG');
    } finally {
      await r.stop();
    }
    await expect(cli(r.port, 'ping')).rejects.toThrow();
  });
});

describe('startRedisCluster', () => {
  it('forms a 3-master cluster covering all slots', async () => {
    const c = await startRedisCluster({ masters: 3 });
    try {
      expect(c.nodes).toHaveLength(3);
      const info = await cli(c.nodes[0]?.port as number, 'cluster', 'info');
      expect(info).toContain('cluster_state:ok');
      expect(info).toContain('cluster_slots_assigned:16384');
      expect(info).toContain('cluster_size:3');
    } finally {
      await c.stop();
    }
  });
});
