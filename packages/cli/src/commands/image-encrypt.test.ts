import { createHash, generateKeyPairSync, randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decryptImage, jweUnwrapper, keyProviderAnnotation, keyProviderUnwrapper } from '@keyhold/ocicrypt';
import { freePort } from '@keyhold/test-harness';
import type { CommandIo } from '../command.js';
import { runKeyhold } from '../program.js';

/** `keyhold image encrypt ...` in process, with an empty environment. */
const run = (argv: string[], io: CommandIo, now?: () => Date): Promise<number> => runKeyhold([...['image', 'encrypt'], ...argv], io, {}, now !== undefined ? { now } : {});

const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');
const layer = randomBytes(200_000);
const kek = randomBytes(32);
let root: string;
let plain: string;

function io() {
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  let out = '';
  let err = '';
  stdout.on('data', (c: Buffer) => (out += c.toString()));
  stderr.on('data', (c: Buffer) => (err += c.toString()));
  return { io: { stdout, stderr }, out: () => out, err: () => err };
}

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'cli-image-'));
  plain = join(root, 'plain');
  await mkdir(join(plain, 'blobs', 'sha256'), { recursive: true });
  const put = async (b: Buffer): Promise<string> => {
    await writeFile(join(plain, 'blobs', 'sha256', sha(b)), b);
    return `sha256:${sha(b)}`;
  };
  const config = Buffer.from('{"rootfs":{"type":"layers","diff_ids":[]}}');
  const m = Buffer.from(JSON.stringify({ schemaVersion: 2, config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: await put(config), size: config.length }, layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: await put(layer), size: layer.length }] }));
  const md = await put(m);
  await writeFile(join(plain, 'oci-layout'), '{"imageLayoutVersion":"1.0.0"}');
  await writeFile(join(plain, 'index.json'), JSON.stringify({ schemaVersion: 2, manifests: [{ mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: md, size: m.length, annotations: { 'org.opencontainers.image.ref.name': 'latest' } }] }));
  await writeFile(join(root, 'kek.bin'), kek);
});
afterAll(async () => {
  if (root !== undefined) await rm(root, { recursive: true, force: true });
});

describe('keyhold image encrypt', () => {
  it('encrypts for the key provider with a KEK file and a jwe recipient; both decrypt; --json has no key', async () => {
    const { publicKey, privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    await writeFile(join(root, 'pub.pem'), publicKey.export({ type: 'spki', format: 'pem' }));
    const out = join(root, 'enc');
    const t = io();
    const code = await run(['--input', `oci:${plain}:latest`, '--output', `oci:${out}:latest`, '--kid', 'kbs:///default/image-kek/app1', '--kek-file', join(root, 'kek.bin'), '--recipient', `jwe:${join(root, 'pub.pem')}`, '--json'], t.io);
    expect(code, t.err()).toBe(0);
    const summary = JSON.parse(t.out()) as { layers: { mediaType: string; digest: string }[]; kek_uploaded: boolean };
    expect(summary.layers[0]?.mediaType).toBe('application/vnd.oci.image.layer.v1.tar+gzip+encrypted');
    expect(summary.kek_uploaded).toBe(false);
    expect(t.out() + t.err()).not.toContain(kek.toString('base64'));
    expect(t.out() + t.err()).not.toContain(kek.toString('hex'));
    // the plaintext layer is nowhere in the output
    expect(await readdir(join(out, 'blobs', 'sha256'))).not.toContain(sha(layer));
    for (const [name, unwrap] of [
      ['provider', keyProviderUnwrapper({ getKek: async () => Buffer.from(kek) })],
      ['jwe', jweUnwrapper([privateKey])],
    ] as const) {
      const dec = join(root, `dec-${name}`);
      const res = await decryptImage({ input: { dir: out, tag: 'latest' }, output: { dir: dec, tag: 'latest' }, unwrap });
      expect(res.layers[0]?.digest).toBe(`sha256:${sha(layer)}`);
    }
    const index = JSON.parse(await readFile(join(out, 'index.json'), 'utf8')) as { manifests: { digest: string }[] };
    const manifest = JSON.parse(await readFile(join(out, 'blobs', 'sha256', index.manifests[0]?.digest.slice(7) as string), 'utf8')) as { layers: { annotations: Record<string, string> }[] };
    const packet = JSON.parse(Buffer.from(manifest.layers[0]?.annotations[keyProviderAnnotation('attestation-agent')] as string, 'base64').toString()) as Record<string, string>;
    expect(packet).toMatchObject({ kid: 'kbs:///default/image-kek/app1', wrap_type: 'A256GCM' });
  });

  it('uploads before encrypting: an unreachable KBS leaves no output', async () => {
    await writeFile(join(root, 'token'), 'x.y.z');
    const port = await freePort();
    const t = io();
    const code = await run(['--input', `oci:${plain}:latest`, '--output', `oci:${join(root, 'never')}:latest`, '--kid', 'kbs:///default/image-kek/app1', '--generate', '--upload', '--url', `http://127.0.0.1:${port}`, '--admin-token-file', join(root, 'token')], t.io);
    expect(code).toBe(1);
    expect(t.err()).toMatch(new RegExp(`^keyhold image encrypt: nothing listens at 127\\.0\\.0\\.1:${port}\\n  hint: is keyhold-kbs running there`));
    expect(await readdir(root)).not.toContain('never');
  });

  it('refuses a KEK file that is not 32 raw bytes, and a missing input image, with exit 1', async () => {
    await writeFile(join(root, 'kek.b64'), kek.toString('base64'));
    const t = io();
    expect(await run(['--input', `oci:${plain}:latest`, '--output', `oci:${join(root, 'never')}:latest`, '--kid', 'kbs:///default/image-kek/app1', '--kek-file', join(root, 'kek.b64')], t.io)).toBe(1);
    expect(t.err()).toContain('exactly 32 raw bytes');
    const t2 = io();
    expect(await run(['--input', `oci:${plain}:nope`, '--output', `oci:${join(root, 'never')}:latest`, '--kid', 'kbs:///default/image-kek/app1', '--kek-file', join(root, 'kek.bin')], t2.io)).toBe(1);
    expect(t2.err()).toContain('OCI_REF_NOT_FOUND');
    expect(await readdir(root)).not.toContain('never');
  });

  it.each([
    [['--output', 'oci:o:latest', '--kid', 'kbs:///a/b/c', '--generate', '--upload']],
    [['--input', 'oci:i:latest', '--output', 'oci:o:latest']],
    [['--input', 'oci:i:latest', '--output', 'oci:o:latest', '--kid', 'kbs:///a/b/c']],
    [['--input', 'oci:i:latest', '--output', 'oci:o:latest', '--kid', 'kbs:///a/b/c', '--kek-file', 'k', '--generate', '--upload']],
    [['--input', 'oci:i:latest', '--output', 'oci:o:latest', '--kid', 'kbs:///a/b/c', '--generate']],
    [['--input', 'oci:i:latest', '--output', 'oci:o:latest', '--kid', 'https://x/a/b/c', '--kek-file', 'k']],
    [['--input', 'oci:i:latest', '--output', 'oci:o:latest', '--recipient', 'jwe:p.pem', '--upload']],
    [['--input', 'i', '--output', 'oci:o:latest', '--recipient', 'jwe:p.pem']],
  ])('usage error (exit 2): %j', async (args) => {
    expect(await run(args, io().io)).toBe(2);
  });
});
