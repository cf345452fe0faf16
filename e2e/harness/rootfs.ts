import { execFile, spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { chmod, lstat, mkdir, readdir, readFile, readlink, symlink, unlink, writeFile } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { promisify } from 'node:util';

/** Image tooling for the e2e tests: umoci builds and unpacks images, skopeo is Go ocicrypt. */
export const run = promisify(execFile);
const have = (cmd: string): boolean => spawnSync(cmd, ['--version'], { stdio: 'ignore' }).status === 0;
export const HAVE_IMAGE_TOOLS = have('umoci') && have('skopeo');
const rootless = process.getuid?.() !== 0 ? ['--rootless'] : [];

export interface RootfsEntry {
  path: string;
  type: string;
  mode: number;
  sha?: string;
  target?: string;
}

/** Every entry under a rootfs: type, permission bits, content hash, symlink target. */
export async function walkRootfs(dir: string, base = dir): Promise<RootfsEntry[]> {
  const out: RootfsEntry[] = [];
  for (const name of (await readdir(dir)).sort()) {
    const p = join(dir, name);
    const st = await lstat(p);
    const e: RootfsEntry = { path: relative(base, p), type: st.isSymbolicLink() ? 'symlink' : st.isDirectory() ? 'dir' : st.isFile() ? 'file' : 'other', mode: st.mode & 0o7777 };
    if (st.isSymbolicLink()) e.target = await readlink(p);
    if (st.isFile()) e.sha = createHash('sha256').update(await readFile(p)).digest('hex');
    out.push(e);
    if (st.isDirectory()) out.push(...(await walkRootfs(p, base)));
  }
  return out;
}

/** `umoci unpack` an image into a fresh bundle under `scratch` and walk its rootfs. */
export async function unpackRootfs(layout: string, tag: string, scratch: string): Promise<RootfsEntry[]> {
  const bundle = join(scratch, `bundle-${randomBytes(4).toString('hex')}`);
  await run('umoci', ['unpack', ...rootless, '--image', `${layout}:${tag}`, bundle]);
  return walkRootfs(join(bundle, 'rootfs'));
}

/** Build a two-layer test image with umoci (files, an executable, a symlink, then a change and a whiteout). */
export async function buildTestImage(layout: string, scratch: string): Promise<void> {
  await run('umoci', ['init', '--layout', layout]);
  await run('umoci', ['new', '--image', `${layout}:latest`]);
  const b1 = join(scratch, 'build1');
  await run('umoci', ['unpack', ...rootless, '--image', `${layout}:latest`, b1]);
  const r1 = join(b1, 'rootfs');
  await mkdir(join(r1, 'app', 'sub'), { recursive: true });
  await writeFile(join(r1, 'app', 'a.txt'), 'hello\n');
  await writeFile(join(r1, 'app', 'sub', 'b.bin'), randomBytes(256 * 1024));
  await writeFile(join(r1, 'app', 'run.sh'), '#!/bin/sh\necho hi\n');
  await chmod(join(r1, 'app', 'run.sh'), 0o755);
  await symlink('a.txt', join(r1, 'app', 'link'));
  await run('umoci', ['repack', '--image', `${layout}:latest`, b1]);
  const b2 = join(scratch, 'build2');
  await run('umoci', ['unpack', ...rootless, '--image', `${layout}:latest`, b2]);
  const r2 = join(b2, 'rootfs');
  await writeFile(join(r2, 'app', 'a.txt'), 'hello again\n');
  await writeFile(join(r2, 'app', 'sub', 'c.txt'), 'new\n');
  await unlink(join(r2, 'app', 'run.sh'));
  await run('umoci', ['repack', '--image', `${layout}:latest`, b2]);
}

/** Files anywhere under `root` whose SHA-256 is one of `digests` (hex): where plaintext layers are. */
export async function filesWithDigest(root: string, digests: ReadonlySet<string>): Promise<string[]> {
  const hits: string[] = [];
  for (const name of await readdir(root)) {
    const p = join(root, name);
    const st = await lstat(p);
    if (st.isDirectory()) hits.push(...(await filesWithDigest(p, digests)));
    else if (st.isFile() && digests.has(createHash('sha256').update(await readFile(p)).digest('hex'))) hits.push(p);
  }
  return hits;
}
