import { createPrivateKey, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { writeFileAtomic } from './storage/atomic-file.js';

/**
 * The token signing key: the configured PEM file, or one generated on first start and kept in the
 * data dir (0600) so tokens stay verifiable across restarts.
 */
export async function loadOrCreateSigningKey(configured: string | undefined, generatedPath: string): Promise<KeyObject> {
  if (configured !== undefined) return createPrivateKey(await readFile(configured));
  try {
    return createPrivateKey(await readFile(generatedPath));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  await writeFileAtomic(generatedPath, privateKey.export({ format: 'pem', type: 'pkcs8' }), 0o600);
  return privateKey;
}
