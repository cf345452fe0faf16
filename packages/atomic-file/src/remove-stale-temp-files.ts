import { readdir, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { processExists } from './process-alive.js';
import { parseTempName } from './temp-name.js';

export interface RemoveStaleTempFilesOptions {
  /** How many directory levels below `dir` to visit as well (default 0: `dir` only). Symlinks are never followed. */
  readonly maxDepth?: number;
}

/**
 * Remove temp files left in `dir` by interrupted atomic writes (a crash between create and rename).
 * Only the project's own temp-name patterns are touched (see temp-name.ts); any other file stays.
 * A temp file whose name carries the pid of a live process (this one included) is kept: it may be a
 * write in flight. Names without a pid (legacy writers) are removed, so call this while holding the
 * directory's lock (`acquireDirLock`), when no other writer can be running. Returns the removed paths.
 */
export async function removeStaleTempFiles(dir: string, options: RemoveStaleTempFilesOptions = {}): Promise<string[]> {
  const maxDepth = options.maxDepth ?? 0;
  if (!Number.isInteger(maxDepth) || maxDepth < 0 || maxDepth > 8) throw new TypeError('removeStaleTempFiles: maxDepth must be an integer in 0..8');
  const removed: string[] = [];
  await visit(dir, maxDepth, removed);
  return removed;
}

async function visit(dir: string, depth: number, removed: string[]): Promise<void> {
  let entries;
  try {
    entries = await readdir(dir, { withFileTypes: true });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT' || (err as NodeJS.ErrnoException).code === 'ENOTDIR') return;
    throw err;
  }
  for (const e of entries) {
    const path = join(dir, e.name);
    if (e.isDirectory()) {
      if (depth > 0) await visit(path, depth - 1, removed);
      continue;
    }
    // SECURITY: only regular files of our own temp-name pattern are removed; symlinks, other files
    // and temp files of live writers are left alone (never delete what we did not write).
    if (!e.isFile()) continue;
    const t = parseTempName(e.name);
    if (t === undefined) continue;
    if (t.pid !== undefined && (t.pid === process.pid || processExists(t.pid))) continue;
    try {
      await unlink(path);
      removed.push(path);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
  }
}
