import { createPrivateKey, generateKeyPairSync, randomBytes, type KeyObject } from 'node:crypto';
import { link, readFile, unlink } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { syncDir, writeFileAtomic } from '@keyhold/atomic-file';

/**
 * The token signing key: the configured PEM file, or one generated on first start and kept in the
 * data dir (0600) so tokens stay verifiable across restarts. Creation never overwrites: processes
 * that start together on one data dir (replicas, `--workers`) all end up with the key that was
 * linked into place first, so every one of them signs and verifies with the same key.
 */
export async function loadOrCreateSigningKey(configured: string | undefined, generatedPath: string): Promise<KeyObject> {
  if (configured !== undefined) return createPrivateKey(await readFile(configured));
  try {
    return createPrivateKey(await readFile(generatedPath));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const staging = join(dirname(generatedPath), `.${basename(generatedPath)}.${process.pid}.${randomBytes(6).toString('hex')}.kh-tmp`);
  await writeFileAtomic(staging, privateKey.export({ format: 'pem', type: 'pkcs8' }), 0o600);
  try {
    await link(staging, generatedPath);
    await syncDir(dirname(generatedPath));
  } catch (err) {
    // Another process created it first: use theirs.
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
  } finally {
    await unlink(staging).catch(() => undefined);
  }
  return createPrivateKey(await readFile(generatedPath));
}
