import { createHash, generateKeyPairSync, randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encryptImage, jweRecipient, keyProviderRecipient } from '@keyhold/ocicrypt';
import { formatResourcePath } from '@keyhold/protocol';
import { TpmError } from '../errors.js';
import { KbsClientError } from '../kbs-client/errors.js';
import { createUnwrapService, type KekSource } from '../keyprovider/unwrap-service.js';
import { runAgentCli } from '../cli.js';
import { decryptImageOnNode, loadDecryptionKey } from './decrypt.js';
import { parseOciRef } from './oci-ref.js';

const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');
const KID = 'kbs:///default/image-kek/app1';
const kek = randomBytes(32);
const layers = [randomBytes(300_000), randomBytes(1000)];
const jweKeys = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const privPem = jweKeys.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string;
let root: string;
let plain: string;
let encProvider: string;
let encJwe: string;

function kbs(resources: Record<string, Uint8Array | KbsClientError>): KekSource {
  return {
    async getResource(path) {
      const r = resources[formatResourcePath(path)];
      if (r === undefined) throw new KbsClientError('RESOURCE_NOT_FOUND', 'HTTP 404', { status: 404 });
      if (r instanceof KbsClientError) throw r;
      return Buffer.from(r);
    },
  };
}

async function writeBlob(dir: string, b: Buffer): Promise<string> {
  await writeFile(join(dir, 'blobs', 'sha256', sha(b)), b);
  return `sha256:${sha(b)}`;
}

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'agent-image-'));
  plain = join(root, 'plain');
  await mkdir(join(plain, 'blobs', 'sha256'), { recursive: true });
  const config = Buffer.from('{"rootfs":{"type":"layers","diff_ids":[]}}');
  const m = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: await writeBlob(plain, config), size: config.length },
      layers: await Promise.all(layers.map(async (l) => ({ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: await writeBlob(plain, l), size: l.length }))),
    }),
  );
  const md = await writeBlob(plain, m);
  await writeFile(join(plain, 'oci-layout'), '{"imageLayoutVersion":"1.0.0"}');
  await writeFile(join(plain, 'index.json'), JSON.stringify({ schemaVersion: 2, manifests: [{ mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: md, size: m.length, annotations: { 'org.opencontainers.image.ref.name': 'latest' } }] }));
  encProvider = join(root, 'enc-provider');
  await encryptImage({ input: { dir: plain, tag: 'latest' }, output: { dir: encProvider, tag: 'latest' }, recipients: [keyProviderRecipient({ kid: KID, kek })] });
  encJwe = join(root, 'enc-jwe');
  await encryptImage({ input: { dir: plain, tag: 'latest' }, output: { dir: encJwe, tag: 'latest' }, recipients: [jweRecipient([jweKeys.publicKey])] });
});
afterAll(async () => {
  if (root !== undefined) await rm(root, { recursive: true, force: true });
});

/** Every blob of a layout hashes to its name, and the plaintext layers are there. */
async function expectPlainLayout(dir: string): Promise<void> {
  const names = await readdir(join(dir, 'blobs', 'sha256'));
  for (const n of names) expect(sha(await readFile(join(dir, 'blobs', 'sha256', n)))).toBe(n);
  for (const l of layers) expect(names).toContain(sha(l));
}

/** Nothing but the inputs is left in the root: no output, no staging directory. */
async function expectNothingLeft(): Promise<void> {
  const left = (await readdir(root)).filter((n) => !['plain', 'enc-provider', 'enc-jwe', 'key.pem', 'pub.pem'].includes(n) && !n.startsWith('ok-'));
  expect(left).toEqual([]);
}

describe('image decrypt on the node', () => {
  it('decrypts key-provider layers with the KEK from the KBS into a verified plain layout', async () => {
    const out = join(root, 'ok-provider');
    const res = await decryptImageOnNode({ input: { dir: encProvider, tag: 'latest' }, output: { dir: out, tag: 'v1' }, service: createUnwrapService(kbs({ 'default/image-kek/app1': kek })) });
    expect(res.layers.map((l) => l.digest)).toEqual(layers.map((l) => `sha256:${sha(l)}`));
    await expectPlainLayout(out);
  });

  it('decrypts jwe layers with a private key held as a KBS resource', async () => {
    const source = kbs({ 'default/image-key/priv': Buffer.from(privPem) });
    const key = await loadDecryptionKey('kbs:///default/image-key/priv', source);
    const out = join(root, 'ok-jwe');
    await decryptImageOnNode({ input: { dir: encJwe, tag: 'latest' }, output: { dir: out, tag: 'latest' }, service: createUnwrapService(source), jweKeys: [key] });
    await expectPlainLayout(out);
  });

  it.each([
    ['the KEK is unknown (404)', {}, 'KEK_NOT_FOUND'],
    ['the release is denied (403)', { 'default/image-kek/app1': new KbsClientError('POLICY_DENY', 'HTTP 403', { status: 403 }) }, 'KEK_RELEASE_DENIED'],
    ['the KEK is wrong', { 'default/image-kek/app1': randomBytes(32) }, 'UNWRAP_FAILED'],
  ])('fails with a clear code and leaves no plaintext when %s', async (_n, resources, code) => {
    await expect(
      decryptImageOnNode({ input: { dir: encProvider, tag: 'latest' }, output: { dir: join(root, 'out'), tag: 'latest' }, service: createUnwrapService(kbs(resources as Record<string, Uint8Array>)) }),
    ).rejects.toMatchObject({ code });
    await expectNothingLeft();
  });

  it('refuses a jwe image when no decryption key is given, naming the scheme', async () => {
    await expect(decryptImageOnNode({ input: { dir: encJwe, tag: 'latest' }, output: { dir: join(root, 'out'), tag: 'latest' }, service: createUnwrapService(kbs({})) })).rejects.toThrow(/jwe.*--decryption-key/);
    await expectNothingLeft();
  });

  it('refuses a decryption key that is not a private key', async () => {
    const pub = Buffer.from(jweKeys.publicKey.export({ type: 'spki', format: 'pem' }) as string);
    await expect(loadDecryptionKey('kbs:///default/image-key/pub', kbs({ 'default/image-key/pub': pub }))).rejects.toMatchObject({ code: 'DECRYPTION_KEY_INVALID' });
    await expect(loadDecryptionKey('kbs:///default/image-key/junk', kbs({ 'default/image-key/junk': randomBytes(100) }))).rejects.toMatchObject({ code: 'DECRYPTION_KEY_INVALID' });
    await expect(loadDecryptionKey('kbs:///default/image-key/priv', kbs({}))).rejects.toMatchObject({ code: 'KEK_NOT_FOUND' });
  });
});

describe('keyhold-agent image decrypt (command)', () => {
  const io = () => {
    const stdout = new PassThrough();
    const stderr = new PassThrough();
    let out = '';
    let err = '';
    stdout.on('data', (c: Buffer) => (out += c.toString()));
    stderr.on('data', (c: Buffer) => (err += c.toString()));
    return { io: { stdout, stderr }, out: () => out, err: () => err };
  };
  const noSession = async (): Promise<never> => {
    throw new TpmError('TPM_UNAVAILABLE', 'no TPM in this test');
  };
  /** `keyhold-agent image ...` in process, with an empty environment and no TPM. */
  const runImageCommand = (argv: string[], io: { stdout: NodeJS.WritableStream; stderr: NodeJS.WritableStream }, env: NodeJS.ProcessEnv, opener: typeof noSession) =>
    runAgentCli(['image', ...argv], io, env, opener);

  it('decrypts a jwe image with a local key file without opening the TPM (--json summary)', async () => {
    await writeFile(join(root, 'key.pem'), privPem);
    const t = io();
    const code = await runImageCommand(['decrypt', '--input', `oci:${encJwe}:latest`, '--output', `oci:${join(root, 'ok-cmd')}:latest`, '--decryption-key', join(root, 'key.pem'), '--json'], t.io, {}, noSession);
    expect(code, t.err()).toBe(0);
    const summary = JSON.parse(t.out()) as { layers: { transformed: boolean }[] };
    expect(summary.layers.every((l) => l.transformed)).toBe(true);
    await expectPlainLayout(join(root, 'ok-cmd'));
  });

  it('reports a failure to attest as one line, exit 1, nothing left', async () => {
    const t = io();
    const code = await runImageCommand(['decrypt', '--input', `oci:${encProvider}:latest`, '--output', `oci:${join(root, 'out')}:latest`], t.io, {}, noSession);
    expect(code).toBe(1);
    expect(t.err()).toBe('keyhold-agent image decrypt: ATTESTER_UNAVAILABLE: cannot attest: TPM_UNAVAILABLE: no TPM in this test\n');
    await expectNothingLeft();
  });

  it.each([
    [['decrypt', '--input', 'oci:x:latest']],
    [['decrypt', '--input', 'docker://x', '--output', 'oci:y:latest']],
    [['encrypt', '--input', 'oci:x:latest', '--output', 'oci:y:latest']],
    [['decrypt', '--bogus']],
  ])('usage errors exit 2: %j', async (args) => {
    expect(await runImageCommand(args, io().io, {}, noSession)).toBe(2);
  });

  it('parses oci:DIR:TAG strictly', () => {
    expect(parseOciRef('oci:/a/b:v1.0')).toEqual({ dir: '/a/b', tag: 'v1.0' });
    expect(() => parseOciRef('oci:/a/b')).toThrow();
    expect(() => parseOciRef('oci:/a/b:bad tag')).toThrow();
  });
});
