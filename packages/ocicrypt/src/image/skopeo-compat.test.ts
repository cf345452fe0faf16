import { execFile, spawnSync } from 'node:child_process';
import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, randomBytes, type KeyObject } from 'node:crypto';
import { chmod, lstat, mkdir, mkdtemp, readdir, readFile, readlink, rm, symlink, unlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { jweRecipient, jweUnwrapper } from '../recipients/jwe.js';
import { keyProviderRecipient, keyProviderUnwrapper } from '../recipients/key-provider.js';
import { decryptImage } from './decrypt.js';
import { encryptImage } from './encrypt.js';

// Compatibility with the real ocicrypt (Go, through skopeo) and real image tooling (umoci).
const run = promisify(execFile);
const have = (cmd: string): boolean => spawnSync(cmd, ['--version'], { stdio: 'ignore' }).status === 0;
const tools = have('skopeo') && have('umoci');
if (!tools) console.warn('skipping ocicrypt compatibility tests: skopeo and umoci must be on PATH (apt-get install skopeo umoci)');
const rootless = process.getuid?.() !== 0 ? ['--rootless'] : [];

let root: string;
let plain: string;
let expected: Entry[];

interface Entry {
  path: string;
  type: string;
  mode: number;
  sha?: string;
  target?: string;
}

/** Every entry under a rootfs: type, permission bits, content hash, symlink target. */
async function walk(dir: string, base = dir): Promise<Entry[]> {
  const out: Entry[] = [];
  for (const name of (await readdir(dir)).sort()) {
    const p = join(dir, name);
    const st = await lstat(p);
    const e: Entry = { path: relative(base, p), type: st.isSymbolicLink() ? 'symlink' : st.isDirectory() ? 'dir' : st.isFile() ? 'file' : 'other', mode: st.mode & 0o7777 };
    if (st.isSymbolicLink()) e.target = await readlink(p);
    if (st.isFile()) e.sha = createHash('sha256').update(await readFile(p)).digest('hex');
    out.push(e);
    if (st.isDirectory()) out.push(...(await walk(p, base)));
  }
  return out;
}

async function unpack(layout: string, tag: string): Promise<Entry[]> {
  const bundle = join(root, `bundle-${randomBytes(4).toString('hex')}`);
  await run('umoci', ['unpack', ...rootless, '--image', `${layout}:${tag}`, bundle]);
  return walk(join(bundle, 'rootfs'));
}

async function skopeo(...args: string[]): Promise<void> {
  await run('skopeo', ['--insecure-policy', 'copy', '--quiet', ...args]);
}

async function pem(key: KeyObject, name: string): Promise<string> {
  const p = join(root, name);
  await writeFile(p, key.export({ type: key.type === 'public' ? 'spki' : 'pkcs8', format: 'pem' }) as string);
  return p;
}

describe.skipIf(!tools)('ocicrypt compatibility (skopeo 1.9 jwe, umoci)', () => {
  beforeAll(async () => {
    root = await mkdtemp(join(tmpdir(), 'ocicrypt-compat-'));
    plain = join(root, 'plain');
    const bundle = join(root, 'build');
    await run('umoci', ['init', '--layout', plain]);
    await run('umoci', ['new', '--image', `${plain}:latest`]);
    await run('umoci', ['unpack', ...rootless, '--image', `${plain}:latest`, bundle]);
    const fsroot = join(bundle, 'rootfs');
    await mkdir(join(fsroot, 'app', 'sub'), { recursive: true });
    await writeFile(join(fsroot, 'app', 'a.txt'), 'hello\n');
    await writeFile(join(fsroot, 'app', 'sub', 'b.bin'), randomBytes(512 * 1024));
    await writeFile(join(fsroot, 'app', 'run.sh'), '#!/bin/sh\necho hi\n');
    await chmod(join(fsroot, 'app', 'run.sh'), 0o755);
    await symlink('a.txt', join(fsroot, 'app', 'link'));
    await run('umoci', ['repack', '--image', `${plain}:latest`, bundle]);
    // second layer (umoci diffs against the image it unpacked): a change, an addition and a
    // deletion (whiteout)
    const bundle2 = join(root, 'build2');
    await run('umoci', ['unpack', ...rootless, '--image', `${plain}:latest`, bundle2]);
    const fsroot2 = join(bundle2, 'rootfs');
    await writeFile(join(fsroot2, 'app', 'a.txt'), 'hello again\n');
    await writeFile(join(fsroot2, 'app', 'sub', 'c.txt'), 'new\n');
    await unlink(join(fsroot2, 'app', 'run.sh'));
    await run('umoci', ['repack', '--image', `${plain}:latest`, bundle2]);
    expected = await unpack(plain, 'latest');
    expect(expected.map((e) => e.path)).toEqual(expect.arrayContaining(['app/a.txt', 'app/link', 'app/sub/b.bin', 'app/sub/c.txt']));
    expect(expected.map((e) => e.path)).not.toContain('app/run.sh');
  });
  afterAll(async () => {
    if (root !== undefined) await rm(root, { recursive: true, force: true });
  });

  it.each([
    ['RSA-2048', () => generateKeyPairSync('rsa', { modulusLength: 2048 })],
    ['EC P-256', () => generateKeyPairSync('ec', { namedCurve: 'P-256' })],
  ])('(a) skopeo encrypts for jwe:%s, decryptImage decrypts, the rootfs is identical', async (name, gen) => {
    const { publicKey, privateKey } = gen();
    const pub = await pem(publicKey, `a-${name}.pub.pem`);
    const enc = join(root, `a-enc-${name}`);
    await skopeo('--encryption-key', `jwe:${pub}`, `oci:${plain}:latest`, `oci:${enc}:latest`);
    const dec = join(root, `a-dec-${name}`);
    const res = await decryptImage({ input: { dir: enc, tag: 'latest' }, output: { dir: dec, tag: 'latest' }, unwrap: jweUnwrapper([createPrivateKey(privateKey.export({ type: 'pkcs8', format: 'pem' }))]) });
    expect(res.layers).toHaveLength(2);
    expect(res.layers.every((l) => l.transformed)).toBe(true);
    expect(await unpack(dec, 'latest')).toEqual(expected);
  });

  it.each([
    ['RSA-2048', () => generateKeyPairSync('rsa', { modulusLength: 2048 })],
    ['EC P-256', () => generateKeyPairSync('ec', { namedCurve: 'P-256' })],
  ])('(b) encryptImage encrypts for a %s JWE recipient, skopeo decrypts, the rootfs is identical', async (name, gen) => {
    const { publicKey, privateKey } = gen();
    const priv = await pem(privateKey, `b-${name}.key.pem`);
    const enc = join(root, `b-enc-${name}`);
    await encryptImage({ input: { dir: plain, tag: 'latest' }, output: { dir: enc, tag: 'latest' }, recipients: [jweRecipient([createPublicKey(publicKey.export({ type: 'spki', format: 'pem' }))])] });
    const dec = join(root, `b-dec-${name}`);
    await skopeo('--decryption-key', priv, `oci:${enc}:latest`, `oci:${dec}:latest`);
    expect(await unpack(dec, 'latest')).toEqual(expected);
    // and skopeo refuses the image without the key: it really is encrypted
    const other = await pem(generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey, `b-${name}.other.pem`);
    await expect(skopeo('--decryption-key', other, `oci:${enc}:latest`, `oci:${join(root, `b-fail-${name}`)}:latest`)).rejects.toThrow();
  });

  it('(c) attestation-agent key provider round trip on a real image; a wrong KEK leaves nothing', async () => {
    const kid = 'kbs:///default/image-kek/app1';
    const kek = randomBytes(32);
    const enc = join(root, 'c-enc');
    await encryptImage({ input: { dir: plain, tag: 'latest' }, output: { dir: enc, tag: 'latest' }, recipients: [keyProviderRecipient({ kid, kek, packetVersion: 2 })] });
    const bad = join(root, 'c-bad');
    await expect(decryptImage({ input: { dir: enc, tag: 'latest' }, output: { dir: bad, tag: 'latest' }, unwrap: keyProviderUnwrapper({ getKek: async () => randomBytes(32) }) })).rejects.toMatchObject({ code: 'PACKET_UNWRAP_FAILED' });
    expect((await readdir(root)).filter((n) => n.startsWith('c-bad') || n.includes('keyhold-tmp'))).toEqual([]);
    const dec = join(root, 'c-dec');
    await decryptImage({ input: { dir: enc, tag: 'latest' }, output: { dir: dec, tag: 'latest' }, unwrap: keyProviderUnwrapper({ getKek: async () => Buffer.from(kek) }) });
    expect(await unpack(dec, 'latest')).toEqual(expected);
  });
});
