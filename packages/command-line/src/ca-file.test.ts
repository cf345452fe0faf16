import { mkdtempSync, writeFileSync } from 'node:fs';
import { generateKeyPairSync } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { readCaFile } from './ca-file.js';

describe('readCaFile (--cert-file)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'keyhold-ca-file-'));
  it('refuses a file without a PEM certificate (e.g. a key given by mistake)', async () => {
    const key = join(dir, 'key.pem');
    writeFileSync(key, generateKeyPairSync('ed25519').privateKey.export({ type: 'pkcs8', format: 'pem' }));
    await expect(readCaFile(key)).rejects.toMatchObject({ exitCode: 2, message: `--cert-file ${key} holds no PEM certificate` });
  });

  it('reads at most 1 MiB (a wrong path such as /dev/zero does not exhaust memory)', async () => {
    await expect(readCaFile('/dev/zero')).rejects.toThrow(/larger than 1048576 bytes/);
  });

  it('names a missing file', async () => {
    await expect(readCaFile(join(dir, 'nope.pem'))).rejects.toMatchObject({ code: 'ENOENT' });
  });
});
