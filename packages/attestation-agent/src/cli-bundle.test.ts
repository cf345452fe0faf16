import { execFile } from 'node:child_process';
import { copyFile, mkdir, mkdtemp, rm, stat, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const run = promisify(execFile);
const LOADER = resolve(fileURLToPath(import.meta.url), '..', '..', 'bin', 'keyhold-agent.js');

/**
 * bin/keyhold-agent.js against a miniature package: an unbundled entry and a "bundle" that say which
 * one ran, and the inputs.json the bundle script writes.
 */
describe('bin/keyhold-agent.js (bundle loader)', () => {
  let pkg: string;
  const bundleFile = () => join(pkg, 'dist', 'bundle', 'keyhold-agent.cjs');
  const input = () => join(pkg, 'dist', 'bin', 'keyhold-agent.js');
  const which = async () => (await run(process.execPath, [join(pkg, 'bin', 'keyhold-agent.js')])).stdout.trim();

  async function stamp(p: string) {
    const st = await stat(p);
    return { path: relative(join(pkg, 'dist', 'bundle'), p), size: st.size, mtimeMs: st.mtimeMs };
  }
  async function writeManifest() {
    await writeFile(join(pkg, 'dist', 'bundle', 'inputs.json'), JSON.stringify({ bundle: await stamp(bundleFile()), inputs: [await stamp(input())] }));
  }

  beforeAll(async () => {
    pkg = await mkdtemp(join(tmpdir(), 'keyhold-bundle-loader-'));
    await mkdir(join(pkg, 'bin'));
    await mkdir(join(pkg, 'dist', 'bin'), { recursive: true });
    await mkdir(join(pkg, 'dist', 'bundle'));
    await copyFile(LOADER, join(pkg, 'bin', 'keyhold-agent.js'));
    // The loader is CommonJS in an ESM package, as bin/package.json declares.
    await copyFile(join(LOADER, '..', 'package.json'), join(pkg, 'bin', 'package.json'));
    await writeFile(join(pkg, 'package.json'), '{"type":"module"}');
    await writeFile(input(), "console.log('unbundled');\n");
    await writeFile(bundleFile(), "process.stdout.write(require('node:path').basename(__filename) + '\\n');\n");
    await writeManifest();
  });
  afterAll(() => rm(pkg, { recursive: true, force: true }));

  it('runs the bundle while every input is unchanged, with or without a usable code cache', async () => {
    expect(await which()).toBe('keyhold-agent.cjs');
    await writeFile(`${bundleFile()}.cache`, 'not a V8 code cache');
    expect(await which()).toBe('keyhold-agent.cjs');
  });

  it('falls back to the compiled modules when an input changed after bundling (a tsc -b without a bundle)', async () => {
    const later = new Date(Date.now() + 5000);
    await utimes(input(), later, later);
    expect(await which()).toBe('unbundled');
    await writeManifest();
    expect(await which()).toBe('keyhold-agent.cjs');
  });

  it('falls back when the bundle itself changed or the manifest is missing or malformed', async () => {
    await writeFile(bundleFile(), "process.stdout.write('edited bundle\\n');\n");
    expect(await which()).toBe('unbundled');
    await writeManifest();
    expect(await which()).toBe('edited bundle');
    await writeFile(join(pkg, 'dist', 'bundle', 'inputs.json'), '{"bundle":{},"inputs":[]}');
    expect(await which()).toBe('unbundled');
    await rm(join(pkg, 'dist', 'bundle', 'inputs.json'));
    expect(await which()).toBe('unbundled');
  });

  describe('the cold get-resource bundle', () => {
    const coldFile = () => join(pkg, 'dist', 'bundle', 'cold-get-resource.cjs');
    const agent = async (args: string[]) => {
      try {
        const r = await run(process.execPath, [join(pkg, 'bin', 'keyhold-agent.js'), ...args]);
        return { code: 0, out: r.stdout.trim() };
      } catch (err) {
        const e = err as { code: number; stdout: string };
        return { code: e.code, out: e.stdout.trim() };
      }
    };
    async function writeColdManifest() {
      await writeFile(join(pkg, 'dist', 'bundle', 'inputs.json'), JSON.stringify({ bundle: await stamp(bundleFile()), inputs: [await stamp(input())], cold: { bundle: await stamp(coldFile()), inputs: [await stamp(input())] } }));
    }

    beforeAll(async () => {
      await writeFile(bundleFile(), "process.stdout.write('full cli\\n');\n");
      // Takes `get-resource X` and exits 3 (after writing); leaves any other line to the CLI.
      await writeFile(
        coldFile(),
        "exports.coldGetResource = (args, io) => args.length === 2 ? Promise.resolve(io.stdout.write('cold ' + args[1] + '\\n')).then(() => 3) : undefined;\n",
      );
      await writeColdManifest();
    });

    it('runs a get-resource line through it, with its exit code, and leaves other lines to the CLI', async () => {
      expect(await agent(['get-resource', 'a/b/c'])).toEqual({ code: 3, out: 'cold a/b/c' });
      expect(await agent(['get-resource', 'a/b/c', '-o', 'f'])).toEqual({ code: 0, out: 'full cli' });
      expect(await agent(['token'])).toEqual({ code: 0, out: 'full cli' });
    });

    it('is not used once an input changed after bundling', async () => {
      const later = new Date(Date.now() + 10_000);
      await utimes(input(), later, later);
      expect(await agent(['get-resource', 'a/b/c'])).toEqual({ code: 0, out: 'unbundled' });
      await writeColdManifest();
      await writeFile(coldFile(), 'exports.coldGetResource = () => undefined;\n');
      expect(await agent(['get-resource', 'a/b/c'])).toEqual({ code: 0, out: 'full cli' });
    });
  });
});

