import { randomBytes } from 'node:crypto';
import { constants, promises as fs } from 'node:fs';
import path from 'node:path';

/** Test hook: called after the temp file is durable and before it is linked into place. */
export type BeforeCommitHook = (tmpFile: string) => Promise<void> | void;

/**
 * Atomically create `file` with `data`, failing with EEXIST if it exists. The data is written to a
 * temp file in the same directory and fsync'd, then hard-linked to the final name (link(2) never
 * replaces an existing name, which makes it a cross-process create-if-absent), then the directory
 * is fsync'd. A crash leaves either no file or the complete one, never a torn file; a leftover temp
 * file (`.tmp-*`) is ignored by readers.
 */
export async function writeFileNoClobber(
  file: string,
  data: Uint8Array,
  mode: number,
  beforeCommit?: BeforeCommitHook,
): Promise<void> {
  const dir = path.dirname(file);
  const tmp = path.join(dir, `.tmp-${randomBytes(8).toString('hex')}`);
  const fh = await fs.open(tmp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, mode);
  try {
    try {
      await fh.writeFile(data);
      await fh.sync();
    } finally {
      await fh.close();
    }
    if (beforeCommit !== undefined) await beforeCommit(tmp);
    await fs.link(tmp, file);
  } finally {
    await fs.unlink(tmp).catch(() => undefined);
  }
  await fsyncDir(dir);
}

/** fsync a directory so a new or removed entry survives a power loss. */
export async function fsyncDir(dir: string): Promise<void> {
  const dh = await fs.open(dir, constants.O_RDONLY | constants.O_DIRECTORY);
  try {
    await dh.sync();
  } finally {
    await dh.close();
  }
}
