import { open } from 'node:fs/promises';

/**
 * Make a written file survive a power loss, as skopeo's layout writer does: a blob's bytes are on
 * disk before the rename that publishes it (directories are synced with @keyhold/atomic-file's
 * `syncDir`).
 */

/** fdatasync a file that was written and closed (Linux syncs through any descriptor of the file). */
export async function syncFile(path: string): Promise<void> {
  const fh = await open(path, 'r');
  try {
    await fh.datasync();
  } finally {
    await fh.close();
  }
}

/** Create `path` (it must not exist) with `data`, synced before it resolves. */
export async function writeFileDurably(path: string, data: string | Uint8Array, mode = 0o600): Promise<void> {
  const fh = await open(path, 'wx', mode);
  try {
    await fh.writeFile(data);
    await fh.datasync();
  } finally {
    await fh.close();
  }
}
