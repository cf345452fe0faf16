import { createHash, generateKeyPairSync } from 'node:crypto';
import { chmod, mkdtemp, readFile, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { deleteNodeKey, ensureNodeCertDir, loadOrCreateNodeKey } from './node-key.js';
import { nodeKeyAdditionalEvidence } from './node-key-binding.js';

const root = await mkdtemp(join(tmpdir(), 'kh-node-key-'));
afterAll(() => rm(root, { recursive: true, force: true }));

describe('node key', () => {
  it('is made once (P-256, PKCS#8, 0600 in a 0700 directory) and kept across loads', async () => {
    const dir = join(root, 'a', 'certs');
    await ensureNodeCertDir(dir);
    expect((await stat(dir)).mode & 0o777).toBe(0o700);
    const k1 = await loadOrCreateNodeKey(dir);
    expect(k1.created).toBe(true);
    expect(k1.privateKey.asymmetricKeyDetails?.namedCurve).toBe('prime256v1');
    expect((await stat(join(dir, 'key.pem'))).mode & 0o777).toBe(0o600);
    expect(await readFile(join(dir, 'key.pem'), 'utf8')).toMatch(/^-----BEGIN PRIVATE KEY-----/);
    const k2 = await loadOrCreateNodeKey(dir);
    expect(k2.created).toBe(false);
    expect(k2.spkiSha256).toBe(k1.spkiSha256);
    expect(k1.spkiSha256).toBe(createHash('sha256').update(k1.spkiDer).digest('hex'));
    expect(await deleteNodeKey(dir)).toBe(true);
    expect(await deleteNodeKey(dir)).toBe(false);
    expect((await loadOrCreateNodeKey(dir)).spkiSha256).not.toBe(k1.spkiSha256);
  });

  it('refuses a key readable by group or others, a symlink, another key type, and garbage', async () => {
    const dir = join(root, 'b');
    await ensureNodeCertDir(dir);
    const file = join(dir, 'key.pem');
    await loadOrCreateNodeKey(dir);
    await chmod(file, 0o640);
    await expect(loadOrCreateNodeKey(dir)).rejects.toMatchObject({ code: 'NODE_CERT_FILES', message: expect.stringMatching(/group or others \(mode 640\)/) });
    await rm(file);
    const elsewhere = join(root, 'elsewhere.pem');
    await writeFile(elsewhere, generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ format: 'pem', type: 'pkcs8' }), { mode: 0o600 });
    await symlink(elsewhere, file);
    await expect(loadOrCreateNodeKey(dir)).rejects.toMatchObject({ code: 'NODE_CERT_FILES', message: expect.stringMatching(/not a regular file/) });
    await rm(file);
    await writeFile(file, generateKeyPairSync('ec', { namedCurve: 'P-384' }).privateKey.export({ format: 'pem', type: 'pkcs8' }), { mode: 0o600 });
    await expect(loadOrCreateNodeKey(dir)).rejects.toMatchObject({ message: expect.stringMatching(/not an EC P-256 key/) });
    await writeFile(file, 'not a key', { mode: 0o600 });
    await expect(loadOrCreateNodeKey(dir)).rejects.toMatchObject({ message: expect.stringMatching(/not a PEM private key/) });
    await writeFile(file, Buffer.alloc(20_000, 0x41), { mode: 0o600 });
    await expect(loadOrCreateNodeKey(dir)).rejects.toMatchObject({ message: expect.stringMatching(/too large/) });
    await writeFile(join(root, 'plainfile'), '');
    await expect(ensureNodeCertDir(join(root, 'plainfile'))).rejects.toBeDefined();
  });

  it('binds the key as canonical JSON of its SPKI SHA-256, as the KBS expects', () => {
    const h = 'ab'.repeat(32);
    expect(nodeKeyAdditionalEvidence(h)).toBe(`{"keyhold.node-key":{"spki-sha256":"${h}"}}`);
    expect(() => nodeKeyAdditionalEvidence('AB'.repeat(32))).toThrow(TypeError);
    expect(() => nodeKeyAdditionalEvidence('ab')).toThrow(TypeError);
  });
});
