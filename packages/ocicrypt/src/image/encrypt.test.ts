import { createHash, generateKeyPairSync, randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { OciLayoutReader } from '../layout/read.js';
import { parsePublicOptions } from '../layer/options.js';
import { jweRecipient, jweUnwrapper } from '../recipients/jwe.js';
import { keyProviderRecipient, keyProviderUnwrapper } from '../recipients/key-provider.js';
import type { ImageProgress } from './types.js';
import { decryptImage } from './decrypt.js';
import { encryptImage } from './encrypt.js';

let root: string;
beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'ocicrypt-enc-'));
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

const sha = (b: Buffer): string => 'sha256:' + createHash('sha256').update(b).digest('hex');

/** A layout written with plain fs calls (independent of the code under test). */
async function makeImage(name: string, layers: Buffer[], mediaType = 'application/vnd.oci.image.layer.v1.tar+gzip'): Promise<string> {
  const dir = join(root, name);
  await mkdir(join(dir, 'blobs', 'sha256'), { recursive: true });
  const put = async (b: Buffer): Promise<string> => {
    await writeFile(join(dir, 'blobs', 'sha256', sha(b).slice(7)), b);
    return sha(b);
  };
  const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: layers.map(sha) } }));
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: await put(config), size: config.length },
      layers: await Promise.all(layers.map(async (l, i) => ({ mediaType, digest: await put(l), size: l.length, annotations: { 'com.example.layer': String(i) } }))),
    }),
  );
  await put(manifest);
  await writeFile(join(dir, 'oci-layout'), '{"imageLayoutVersion":"1.0.0"}');
  await writeFile(join(dir, 'index.json'), JSON.stringify({ schemaVersion: 2, manifests: [{ mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: sha(manifest), size: manifest.length, annotations: { 'org.opencontainers.image.ref.name': 'latest' } }] }));
  return dir;
}

async function layersOf(dir: string, tag: string): Promise<{ mediaType: string; digest: string; size: number; annotations?: Record<string, string>; bytes: Buffer }[]> {
  const r = await OciLayoutReader.open(dir);
  const { manifest } = await r.readManifest(r.resolve(tag));
  return Promise.all(manifest.layers.map(async (l) => ({ ...l, bytes: await r.readBlob(l, 64 * 1024 * 1024) })));
}

describe('encryptImage / decryptImage', () => {
  const kid = 'kbs:///default/image-kek/app1';
  const kek = randomBytes(32);
  const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });

  it('encrypts every layer for two recipients; each decrypts back to the original blobs', async () => {
    const plain = [randomBytes(300_000), randomBytes(1), Buffer.alloc(0)];
    const input = await makeImage('multi', plain);
    const progress: ImageProgress[] = [];
    const res = await encryptImage({
      input: { dir: input, tag: 'latest' },
      output: { dir: join(root, 'multi-enc'), tag: 'enc' },
      recipients: [keyProviderRecipient({ kid, kek }), jweRecipient([rsa.publicKey])],
      onProgress: (p) => progress.push(p),
    });
    expect(res.layers.map((l) => l.transformed)).toEqual([true, true, true]);
    const enc = await layersOf(join(root, 'multi-enc'), 'enc');
    for (const [i, l] of enc.entries()) {
      expect(l.mediaType).toBe('application/vnd.oci.image.layer.v1.tar+gzip+encrypted');
      expect(l.size).toBe(plain[i]?.length);
      // A 1-byte ciphertext equals its plaintext by chance 1 time in 256: only compare layers long enough to mean it.
      if (l.size >= 16) expect(l.bytes.equals(plain[i] as Buffer)).toBe(false);
      expect(Object.keys(l.annotations ?? {})).toEqual([
        'com.example.layer',
        'org.opencontainers.image.enc.keys.jwe',
        'org.opencontainers.image.enc.keys.provider.attestation-agent',
        'org.opencontainers.image.enc.pubopts',
      ]);
      expect(parsePublicOptions(l.annotations?.['org.opencontainers.image.enc.pubopts']).cipher).toBe('AES_256_CTR_HMAC_SHA256');
    }
    // progress: monotonic, ends at the total
    const total = plain.reduce((n, b) => n + b.length, 0);
    expect(progress.at(-1)).toMatchObject({ bytesDone: total, bytesTotal: total, layers: 3 });
    for (let i = 1; i < progress.length; i++) expect((progress[i] as ImageProgress).bytesDone).toBeGreaterThanOrEqual((progress[i - 1] as ImageProgress).bytesDone);

    for (const [name, unwrap] of [
      ['kp', keyProviderUnwrapper({ getKek: async (k) => (k === kid ? Buffer.from(kek) : Promise.reject(new Error('unknown kid'))) })],
      ['jwe', jweUnwrapper([rsa.privateKey])],
    ] as const) {
      await decryptImage({ input: { dir: join(root, 'multi-enc'), tag: 'enc' }, output: { dir: join(root, `multi-dec-${name}`), tag: 'latest' }, unwrap });
      const dec = await layersOf(join(root, `multi-dec-${name}`), 'latest');
      expect(dec.map((l) => l.digest)).toEqual(plain.map(sha));
      expect(dec.map((l) => l.mediaType)).toEqual(plain.map(() => 'application/vnd.oci.image.layer.v1.tar+gzip'));
      expect(dec.map((l) => l.annotations)).toEqual(plain.map((_, i) => ({ 'com.example.layer': String(i) })));
      // The decrypted manifest is the original one again.
      const a = await OciLayoutReader.open(input);
      const b = await OciLayoutReader.open(join(root, `multi-dec-${name}`));
      expect(b.resolve('latest').digest).toBe(a.resolve('latest').digest);
    }
  });

  it('uses a fresh key and nonce per layer (identical layers give different ciphertexts)', async () => {
    const same = randomBytes(1000);
    const input = await makeImage('same', [same, same]);
    await encryptImage({ input: { dir: input, tag: 'latest' }, output: { dir: join(root, 'same-enc'), tag: 'latest' }, recipients: [keyProviderRecipient({ kid, kek })] });
    const enc = await layersOf(join(root, 'same-enc'), 'latest');
    expect(enc[0]?.digest).not.toBe(enc[1]?.digest);
  });

  it('writes into an existing layout under a new tag (in-place encryption) and keeps the old tag', async () => {
    const input = await makeImage('inplace', [randomBytes(5000)]);
    await encryptImage({ input: { dir: input, tag: 'latest' }, output: { dir: input, tag: 'encrypted' }, recipients: [keyProviderRecipient({ kid, kek })] });
    const r = await OciLayoutReader.open(input);
    expect(r.resolve('latest').digest).not.toBe(r.resolve('encrypted').digest);
    expect((await readdir(input)).sort()).toEqual(['blobs', 'index.json', 'oci-layout']);
  });

  it('refuses layers it cannot encrypt before writing anything', async () => {
    const docker = await makeImage('docker', [randomBytes(10)], 'application/vnd.docker.image.rootfs.diff.tar.gzip');
    await expect(encryptImage({ input: { dir: docker, tag: 'latest' }, output: { dir: join(root, 'docker-out'), tag: 'x' }, recipients: [keyProviderRecipient({ kid, kek })] })).rejects.toMatchObject({ code: 'OCI_UNSUPPORTED_MEDIA_TYPE' });
    const again = await makeImage('again', [randomBytes(10)], 'application/vnd.oci.image.layer.v1.tar+gzip+encrypted');
    await expect(encryptImage({ input: { dir: again, tag: 'latest' }, output: { dir: join(root, 'again-out'), tag: 'x' }, recipients: [keyProviderRecipient({ kid, kek })] })).rejects.toMatchObject({ code: 'LAYER_ALREADY_ENCRYPTED' });
    expect((await readdir(root)).filter((n) => n.includes('-out'))).toEqual([]);
  });

  it('refuses a tampered input layer (digest verified while streaming) and leaves no output', async () => {
    const layer = randomBytes(70_000);
    const input = await makeImage('tampered', [layer]);
    const path = join(input, 'blobs', 'sha256', sha(layer).slice(7));
    const bytes = await readFile(path);
    bytes[69_999] = (bytes[69_999] as number) ^ 1;
    await writeFile(path, bytes);
    await expect(encryptImage({ input: { dir: input, tag: 'latest' }, output: { dir: join(root, 'tampered-out'), tag: 'x' }, recipients: [keyProviderRecipient({ kid, kek })] })).rejects.toMatchObject({ code: 'OCI_BLOB_DIGEST_MISMATCH' });
    expect((await readdir(root)).filter((n) => n.includes('tampered-out'))).toEqual([]);
  });

  it('rejects misuse with TypeError', async () => {
    const input = await makeImage('misuse', [randomBytes(10)]);
    await expect(encryptImage({ input: { dir: input, tag: 'latest' }, output: { dir: join(root, 'm'), tag: 'x' }, recipients: [] })).rejects.toBeInstanceOf(TypeError);
    await expect(encryptImage({ input: { dir: input, tag: 'latest' }, output: { dir: join(root, 'm'), tag: 'x' }, recipients: [{ scheme: '../x', wrap: async (b) => b }] })).rejects.toBeInstanceOf(TypeError);
  });
});
