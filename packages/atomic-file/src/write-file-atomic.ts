import { open, rename, unlink } from 'node:fs/promises';
import { dirname } from 'node:path';
import { tempPathFor } from './temp-name.js';

/**
 * Replace `path`'s content atomically and durably: write a temp file in the same directory, fsync
 * it, rename it over the target, fsync the directory. A crash (or SIGKILL) at any point leaves the
 * old content or the new one, never a torn file; when the promise resolves the new content
 * survives a power loss. A failed write removes its temp file; one left by a crash is recognised
 * by `removeStaleTempFiles`. `data` may be an async iterable of chunks (large files written
 * without building one string).
 */
export async function writeFileAtomic(path: string, data: string | Uint8Array | AsyncIterable<string | Uint8Array>, mode = 0o600): Promise<void> {
  if (typeof path !== 'string' || path === '') throw new TypeError('writeFileAtomic: path must be a non-empty string');
  if (!Number.isInteger(mode) || mode < 0 || mode > 0o777) throw new TypeError('writeFileAtomic: mode must be a permission mode (0..0o777)');
  const tmp = tempPathFor(path);
  const fh = await open(tmp, 'wx', mode);
  try {
    if (typeof data === 'string' || data instanceof Uint8Array) await fh.writeFile(data);
    else for await (const chunk of data) await fh.writeFile(chunk);
    await fh.sync();
  } catch (err) {
    await fh.close().catch(() => undefined);
    await unlink(tmp).catch(() => undefined);
    throw err;
  }
  await fh.close();
  try {
    await rename(tmp, path);
  } catch (err) {
    await unlink(tmp).catch(() => undefined);
    throw err;
  }
  await syncDir(dirname(path));
}

/** fsync a directory, so that a rename, create or unlink in it is durable. */
export async function syncDir(dir: string): Promise<void> {
  const fh = await open(dir, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}
