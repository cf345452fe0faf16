import { randomBytes } from 'node:crypto';
import { constants, promises as fs } from 'node:fs';
import path from 'node:path';
import { KmsError } from './errors.js';
import { MASTER_KEY_BYTES } from './key-wrapper.js';
import { writeFileNoClobber } from './internal/atomic-file.js';

/**
 * Read the 32-byte master key from `file` (raw bytes), creating it with mode 0600 on first start.
 * Creation is atomic and never overwrites: when two processes race, both end up with the one key
 * that was linked into place first.
 */
export async function loadOrCreateMasterKey(file: string): Promise<Uint8Array> {
  try {
    return await readMasterKey(file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  await fs.mkdir(path.dirname(file), { recursive: true, mode: 0o700 });
  const key = randomBytes(MASTER_KEY_BYTES);
  try {
    await writeFileNoClobber(file, key, 0o600);
  } finally {
    key.fill(0);
  }
  return readMasterKey(file);
}

/** Read an existing master key file; KMS_CONFIG when it is unusable. */
export async function readMasterKey(file: string): Promise<Uint8Array> {
  const fh = await fs.open(file, constants.O_RDONLY | constants.O_NOFOLLOW);
  try {
    const st = await fh.stat();
    // SECURITY: refuse a key file other users can read or write, as ssh does for private keys
    // (key disclosure or substitution by a local user).
    if ((st.mode & 0o077) !== 0) {
      throw new KmsError('KMS_CONFIG', 'the master key file must not be accessible to group or others (chmod 600)');
    }
    // SECURITY: check the size before reading; a key file of another size is a mistake or a swap.
    if (!st.isFile() || st.size !== MASTER_KEY_BYTES) {
      throw new KmsError('KMS_CONFIG', `the master key file must hold exactly ${MASTER_KEY_BYTES} raw bytes`);
    }
    const buf = Buffer.alloc(MASTER_KEY_BYTES);
    const { bytesRead } = await fh.read(buf, 0, MASTER_KEY_BYTES, 0);
    if (bytesRead !== MASTER_KEY_BYTES) throw new KmsError('KMS_CONFIG', 'the master key file is truncated');
    return buf;
  } finally {
    await fh.close();
  }
}
