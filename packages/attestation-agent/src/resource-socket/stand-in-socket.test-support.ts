import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'vitest';
import { ResourceSocketError } from './client.js';
import { startResourceSocket, type ResourceSocket, type ResourceSocketOptions } from './server.js';

/** The ResourceSocketError a fetch through the socket fails with (the test fails if it succeeds or fails otherwise). */
export async function socketFailure(p: Promise<unknown>): Promise<ResourceSocketError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(ResourceSocketError);
  return err as ResourceSocketError;
}

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
