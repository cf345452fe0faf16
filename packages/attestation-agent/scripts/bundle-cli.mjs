#!/usr/bin/env node
/**
 * Bundle the agent CLI into one file, `dist/bundle/keyhold-agent.cjs`, with a V8 code cache next to
 * it, so that a `keyhold-agent` process loads one pre-compiled file instead of compiling a few hundred
 * modules (issue 11: ocicrypt's cmd mode starts the agent once per layer key). Input: the compiled
 * `dist/bin/keyhold-agent.js` (run `tsc -b` first; the root `pnpm run build` does both). Native
 * modules stay external (koffi loads a .node file). Commands the CLI imports on demand (keyprovider
 * with gRPC, image decryption) stay lazily initialised inside the bundle.
 *
 * The code cache is made here, by compiling the bundle exactly as bin/keyhold-agent.js does and
 * running its start-up (`--version`), which compiles every module the CLI initialises. V8 refuses a
 * cache made by another V8 version or with other flags; the loader then compiles from source.
 *
 * `dist/bundle/inputs.json` lists the workspace files the bundle was built from with their sizes and
 * mtimes, and the bundle's own; bin/keyhold-agent.js runs the bundle only while they all still
 * match, so a `tsc -b` without a new bundle never runs stale code.
 */
import { build } from 'esbuild';
import { readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import vm from 'node:vm';

const pkg = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const outdir = resolve(pkg, 'dist', 'bundle');
const outfile = resolve(outdir, 'keyhold-agent.cjs');
rmSync(outdir, { recursive: true, force: true });
const result = await build({
  absWorkingDir: pkg,
  entryPoints: [resolve(pkg, 'dist', 'bin', 'keyhold-agent.js')],
  outfile,
  bundle: true,
  platform: 'node',
  format: 'cjs',
  target: 'node20',
  // Native code, loaded by path at run time.
  external: ['koffi'],
  metafile: true,
  logLevel: 'warning',
  legalComments: 'none',
});
// The loader wraps the source in a function; a leading `#!` line would not parse there.
const source = readFileSync(outfile, 'utf8').replace(/^#!.*\n/, '');
writeFileSync(outfile, source);

/** Must stay identical to the wrapper in bin/keyhold-agent.js, or V8 rejects the cache. */
const wrap = (src) => `(function (exports, require, module, __filename, __dirname) {${src}\n})`;
const script = new vm.Script(wrap(source), { filename: outfile });
const argv = process.argv;
const write = process.stdout.write;
process.argv = [process.execPath, outfile, '--version'];
process.stdout.write = () => true;
try {
  const mod = { exports: {} };
  script.runInThisContext()(mod.exports, createRequire(outfile), mod, outfile, outdir);
  await new Promise((r) => setTimeout(r, 50));
} finally {
  process.argv = argv;
  process.stdout.write = write;
  process.exitCode = 0;
}
writeFileSync(`${outfile}.cache`, script.createCachedData());

// Workspace inputs only: dependencies change with an install, which is followed by a build.
const stamp = (p) => {
  const st = statSync(p);
  return { path: relative(outdir, p), size: st.size, mtimeMs: st.mtimeMs };
};
const inputs = Object.keys(result.metafile.inputs)
  .map((p) => resolve(pkg, p))
  .filter((p) => !p.includes('/node_modules/') || p.includes('/node_modules/@keyhold/'))
  .map(stamp);
writeFileSync(resolve(outdir, 'inputs.json'), JSON.stringify({ bundle: stamp(outfile), inputs }));
console.log(`keyhold-agent bundle: ${inputs.length} workspace modules → ${relative(pkg, outfile)} (${(source.length / 1024).toFixed(0)} KiB, code cache ${(statSync(`${outfile}.cache`).size / 1024).toFixed(0)} KiB)`);
