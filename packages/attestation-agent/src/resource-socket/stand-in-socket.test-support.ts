import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startResourceSocket, type ResourceSocket, type ResourceSocketOptions } from './server.js';

/**
 * The daemon's resource socket in a fresh 0700 directory, serving what `fetch` (a stand-in for the
 * daemon's KBS client) answers; close() stops it and removes the directory.
 */
export async function startStandInSocket(fetch: ResourceSocketOptions['fetch']): Promise<{ socket: ResourceSocket; dir: string; close(): Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), 'kh-socket-'));
  await mkdir(join(dir, 'run'), { mode: 0o700 });
  const socket = await startResourceSocket({ path: join(dir, 'run', 'agent.sock'), log: { info: () => undefined, warn: () => undefined }, fetch });
  return {
    socket,
    dir,
    async close() {
      await socket.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}
