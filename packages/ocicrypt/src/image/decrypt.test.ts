import { createHash, randomBytes } from 'node:crypto';
import { cp, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encodePublicOptions } from '../layer/options.js';
import { keyProviderAnnotation, keyProviderRecipient, keyProviderUnwrapper } from '../recipients/key-provider.js';
import type { Unwrapper } from '../recipients/types.js';
import { decryptImage } from './decrypt.js';
import { encryptImage } from './encrypt.js';

let root: string;
let encrypted: string;
const kid = 'kbs:///default/image-kek/app1';
const kek = randomBytes(32);
const plainLayer = randomBytes(200_000);
const sha = (b: Buffer): string => 'sha256:' + createHash('sha256').update(b).digest('hex');
const ANNOTATION = keyProviderAnnotation('attestation-agent');
const goodUnwrap = keyProviderUnwrapper({ getKek: async () => Buffer.from(kek) });

interface Layer {
  mediaType: string;
  digest: string;
  size: number;
  annotations: Record<string, string>;
}
interface Manifest {
  layers: Layer[];
}

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'ocicrypt-dec-'));
  const plain = join(root, 'plain');
  await mkdir(join(plain, 'blobs', 'sha256'), { recursive: true });
  const config = Buffer.from('{"rootfs":{"type":"layers","diff_ids":[]}}');
  await writeFile(join(plain, 'blobs', 'sha256', sha(config).slice(7)), config);
  await writeFile(join(plain, 'blobs', 'sha256', sha(plainLayer).slice(7)), plainLayer);
  const m = Buffer.from(JSON.stringify({ schemaVersion: 2, config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: sha(config), size: config.length }, layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: sha(plainLayer), size: plainLayer.length }] }));
  await writeFile(join(plain, 'blobs', 'sha256', sha(m).slice(7)), m);
  await writeFile(join(plain, 'oci-layout'), '{"imageLayoutVersion":"1.0.0"}');
  await writeFile(join(plain, 'index.json'), JSON.stringify({ schemaVersion: 2, manifests: [{ mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: sha(m), size: m.length, annotations: { 'org.opencontainers.image.ref.name': 'latest' } }] }));
  encrypted = join(root, 'enc');
  await encryptImage({ input: { dir: plain, tag: 'latest' }, output: { dir: encrypted, tag: 'latest' }, recipients: [keyProviderRecipient({ kid, kek })] });
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

/** Copy the encrypted layout and let `edit` change its manifest (and blobs); the index follows. */
async function variant(name: string, edit: (m: Manifest, dir: string) => Promise<void> | void): Promise<string> {
  const dir = join(root, name);
  await cp(encrypted, dir, { recursive: true });
  const index = JSON.parse(await readFile(join(dir, 'index.json'), 'utf8')) as { manifests: { digest: string; size: number }[] };
  const entry = index.manifests[0] as { digest: string; size: number };
  const m = JSON.parse(await readFile(join(dir, 'blobs', 'sha256', entry.digest.slice(7)), 'utf8')) as Manifest;
  await edit(m, dir);
  const bytes = Buffer.from(JSON.stringify(m));
  await writeFile(join(dir, 'blobs', 'sha256', sha(bytes).slice(7)), bytes);
  entry.digest = sha(bytes);
  entry.size = bytes.length;
  await writeFile(join(dir, 'index.json'), JSON.stringify(index));
  return dir;
}

const packetOf = (l: Layer): Record<string, unknown> => JSON.parse(Buffer.from(l.annotations[ANNOTATION] as string, 'base64').toString()) as Record<string, unknown>;
const setPacket = (l: Layer, p: Record<string, unknown>): void => {
  l.annotations[ANNOTATION] = Buffer.from(JSON.stringify(p)).toString('base64');
};

/** Decrypt must fail with `code`, and leave no output and no staging directory. */
async function expectFailure(input: string, unwrap: Unwrapper, code: string): Promise<void> {
  const out = join(root, `out-${randomBytes(4).toString('hex')}`);
  await expect(decryptImage({ input: { dir: input, tag: 'latest' }, output: { dir: out, tag: 'latest' }, unwrap })).rejects.toMatchObject({ code });
  const leftovers = (await readdir(root)).filter((n) => n.startsWith('out-') || n.includes('keyhold-tmp'));
  expect(leftovers).toEqual([]);
}

describe('decryptImage refuses, leaving no plaintext on disk', () => {
  it('decrypts the untouched image (control)', async () => {
    const out = join(root, 'control');
    const res = await decryptImage({ input: { dir: encrypted, tag: 'latest' }, output: { dir: out, tag: 'latest' }, unwrap: goodUnwrap });
    expect(res.layers[0]?.digest).toBe(sha(plainLayer));
    expect((await readFile(join(out, 'blobs', 'sha256', sha(plainLayer).slice(7)))).equals(plainLayer)).toBe(true);
    await rm(out, { recursive: true });
  });

  it('a wrong KEK', async () => {
    await expectFailure(encrypted, keyProviderUnwrapper({ getKek: async () => randomBytes(32) }), 'PACKET_UNWRAP_FAILED');
  });

  it('a corrupt packet (flipped bit in wrapped_data)', async () => {
    const dir = await variant('corrupt', (m) => {
      const l = m.layers[0] as Layer;
      const p = packetOf(l);
      const w = Buffer.from(p.wrapped_data as string, 'base64');
      w[0] = (w[0] as number) ^ 1;
      setPacket(l, { ...p, wrapped_data: w.toString('base64') });
    });
    await expectFailure(dir, goodUnwrap, 'PACKET_UNWRAP_FAILED');
  });

  it('an unknown wrap_type', async () => {
    const dir = await variant('wraptype', (m) => setPacket(m.layers[0] as Layer, { ...packetOf(m.layers[0] as Layer), wrap_type: 'A128KW' }));
    await expectFailure(dir, goodUnwrap, 'PACKET_WRAP_TYPE_UNSUPPORTED');
  });

  it('a packet that is not JSON', async () => {
    const dir = await variant('notjson', (m) => {
      (m.layers[0] as Layer).annotations[ANNOTATION] = Buffer.from('{{{').toString('base64');
    });
    await expectFailure(dir, goodUnwrap, 'PACKET_MALFORMED');
  });

  it('a modified ciphertext whose manifest digest was updated to match (HMAC catches it)', async () => {
    const dir = await variant('ciphertext', async (m, d) => {
      const l = m.layers[0] as Layer;
      const bytes = await readFile(join(d, 'blobs', 'sha256', l.digest.slice(7)));
      bytes[12_345] = (bytes[12_345] as number) ^ 0x10;
      await writeFile(join(d, 'blobs', 'sha256', sha(bytes).slice(7)), bytes);
      l.digest = sha(bytes);
    });
    await expectFailure(dir, goodUnwrap, 'LAYER_HMAC_MISMATCH');
  });

  it('a modified ciphertext blob (digest check catches it)', async () => {
    const dir = await variant('blob', async (m, d) => {
      const path = join(d, 'blobs', 'sha256', (m.layers[0] as Layer).digest.slice(7));
      const bytes = await readFile(path);
      bytes[1] = (bytes[1] as number) ^ 1;
      await writeFile(path, bytes);
    });
    await expectFailure(dir, goodUnwrap, 'OCI_BLOB_DIGEST_MISMATCH');
  });

  it('a replaced pubopts hmac', async () => {
    const dir = await variant('pubopts', (m) => {
      (m.layers[0] as Layer).annotations['org.opencontainers.image.enc.pubopts'] = encodePublicOptions({ cipher: 'AES_256_CTR_HMAC_SHA256', hmac: randomBytes(32) }).toString('base64');
    });
    await expectFailure(dir, goodUnwrap, 'LAYER_HMAC_MISMATCH');
  });

  it('a missing wrapped key, and an unwrapper that fails with a foreign error', async () => {
    const dir = await variant('nokey', (m) => {
      delete (m.layers[0] as Layer).annotations[ANNOTATION];
    });
    await expectFailure(dir, goodUnwrap, 'NO_WRAPPED_KEY');
    await expectFailure(encrypted, async () => Promise.reject(new Error('KBS denied')), 'UNWRAP_FAILED');
  });

  it('a wrapped key taken from another image (its key does not authenticate this ciphertext)', async () => {
    const other = join(root, 'other-plain');
    await cp(join(root, 'plain'), other, { recursive: true });
    const otherEnc = join(root, 'other-enc');
    await encryptImage({ input: { dir: other, tag: 'latest' }, output: { dir: otherEnc, tag: 'latest' }, recipients: [keyProviderRecipient({ kid, kek })] });
    const otherIndex = JSON.parse(await readFile(join(otherEnc, 'index.json'), 'utf8')) as { manifests: { digest: string }[] };
    const otherManifest = JSON.parse(await readFile(join(otherEnc, 'blobs', 'sha256', (otherIndex.manifests[0] as { digest: string }).digest.slice(7)), 'utf8')) as Manifest;
    const dir = await variant('swapped', (m) => {
      (m.layers[0] as Layer).annotations[ANNOTATION] = (otherManifest.layers[0] as Layer).annotations[ANNOTATION] as string;
    });
    await expectFailure(dir, goodUnwrap, 'LAYER_HMAC_MISMATCH');
  });

  it('leaves an existing output layout untouched on failure', async () => {
    const out = join(root, 'existing');
    await cp(join(root, 'plain'), out, { recursive: true });
    const before = (await readdir(join(out, 'blobs', 'sha256'))).sort();
    const indexBefore = await readFile(join(out, 'index.json'), 'utf8');
    await expect(decryptImage({ input: { dir: encrypted, tag: 'latest' }, output: { dir: out, tag: 'dec' }, unwrap: keyProviderUnwrapper({ getKek: async () => randomBytes(32) }) })).rejects.toMatchObject({ code: 'PACKET_UNWRAP_FAILED' });
    expect((await readdir(out)).sort()).toEqual(['blobs', 'index.json', 'oci-layout']);
    expect((await readdir(join(out, 'blobs', 'sha256'))).sort()).toEqual(before);
    expect(await readFile(join(out, 'index.json'), 'utf8')).toBe(indexBefore);
  });
});
