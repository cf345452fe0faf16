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
 * running it (`--version`, and `get-resource` against no TPM), which compiles every module the CLI
 * and the TPM commands initialise. V8 refuses a
 * cache made by another V8 version or with other flags; the loader then compiles from source.
 *
 * `dist/bundle/inputs.json` lists the workspace files the bundle was built from with their sizes and
 * mtimes, and the bundle's own; bin/keyhold-agent.js runs the bundle only while they all still
 * match, so a `tsc -b` without a new bundle never runs stale code.
 */
import { build } from 'esbuild';
import { existsSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import vm from 'node:vm';

const pkg = resolve(dirname(fileURLToPath(import.meta.url)), '..');

/**
 * commander requires node:child_process at load, only to spawn executable subcommands, which the
 * agent does not have; loading it costs every start several ms. In the bundle, commander gets it on
 * first use instead.
 */
const lazyChildProcessForCommander = {
  name: 'lazy-child-process-for-commander',
  setup(b) {
    b.onResolve({ filter: /^node:child_process$/ }, (args) => (/[\\/]commander[\\/]/.test(args.importer) ? { path: 'lazy-child-process', namespace: 'keyhold-lazy' } : undefined));
    b.onLoad({ filter: /.*/, namespace: 'keyhold-lazy' }, () => ({
      contents: "module.exports = new Proxy({}, { get: (_, name) => require('node:child_process')[name] });",
      loader: 'js',
    }));
  },
};
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
  // The TPM layer requires koffi with createRequire(import.meta.url): here, relative to the bundle
  // (createRequire takes a path as well as a file URL).
  define: { 'import.meta.url': '__filename' },
  metafile: true,
  plugins: [lazyChildProcessForCommander],
  logLevel: 'warning',
  legalComments: 'none',
  // Fewer bytes to read at every start (names are kept for stack traces); pure ASCII (esbuild's
  // default charset, and no comments left), which the loader reads as latin1, its cheapest decoding.
  minifyWhitespace: true,
});
// The loader wraps the source in a function; a leading `#!` line would not parse there.
const source = readFileSync(outfile, 'utf8').replace(/^#!.*\n/, '');
// The loader decodes the bundle as latin1, which is exact only for ASCII.
if (/[^\x00-\x7f]/.test(source)) throw new Error('keyhold-agent bundle: not pure ASCII; bin/keyhold-agent.js reads it as latin1');
writeFileSync(outfile, source);

/** Must stay identical to the wrapper in bin/keyhold-agent.js, or V8 rejects the cache. */
const wrap = (src) => `(function (exports, require, module, __filename, __dirname) {${src}\n})`;
const script = new vm.Script(wrap(source), { filename: outfile });
/**
 * Run the bundled CLI once with `args` (output discarded) and wait for its exit code: every function
 * it runs is compiled and so lands in the code cache.
 */
async function trainingRun(args) {
  const { argv, exitCode } = process;
  const { write: out } = process.stdout;
  const { write: err } = process.stderr;
  process.argv = [process.execPath, outfile, ...args];
  process.stdout.write = () => true;
  process.stderr.write = () => true;
  process.exitCode = undefined;
  try {
    const mod = { exports: {} };
    script.runInThisContext()(mod.exports, createRequire(outfile), mod, outfile, outdir);
    for (let waited = 0; process.exitCode === undefined && waited < 10_000; waited += 10) await new Promise((r) => setTimeout(r, 10));
  } finally {
    process.argv = argv;
    process.stdout.write = out;
    process.stderr.write = err;
    process.exitCode = exitCode;
  }
}
// Start-up and --version: commander and the CLI declaration.
await trainingRun(['--version']);
// get-resource up to the TPM, which is not there: the module graph of the TPM commands (KBS client,
// protocol schemas, tpm2-tss bindings) gets compiled too, as ocicrypt's once-per-key runs need it.
// The cache is ~45% larger; a get-resource spends ~16 ms less initialising its modules.
await trainingRun(['get-resource', 'kbs:///keyhold/code-cache/training', '--url', 'http://127.0.0.1:9', '--tcti', 'device:/nonexistent/keyhold-code-cache-training']);
writeFileSync(`${outfile}.cache`, script.createCachedData());

// Workspace inputs only: dependencies change with an install, which is followed by a build.
const stamp = (p) => {
  const st = statSync(p);
  return { path: relative(outdir, p), size: st.size, mtimeMs: st.mtimeMs };
};
/**
 * What stands for a workspace input in the manifest: `tsc -b` rewrites a project's
 * dist/.tsbuildinfo whenever it emits into that dist/, so one stamp covers all of a package's
 * compiled modules (a few stats at each start instead of one per module); any other file stands
 * for itself.
 */
function stampFileOf(file) {
  for (let dir = dirname(file); dir !== dirname(dir); dir = dirname(dir)) {
    if (!existsSync(resolve(dir, 'package.json'))) continue;
    const info = resolve(dir, 'dist', '.tsbuildinfo');
    return file.startsWith(resolve(dir, 'dist') + sep) && existsSync(info) ? info : file;
  }
  return file;
}
const modules = Object.keys(result.metafile.inputs)
  .filter((p) => !p.startsWith('keyhold-lazy:'))
  .map((p) => resolve(pkg, p))
  .filter((p) => !p.includes('/node_modules/') || p.includes('/node_modules/@keyhold/'));
const inputs = [...new Set(modules.map(stampFileOf))].map(stamp);

/**
 * The fast path of `get-resource --resource-socket` (src/resource-socket/fast-get-resource.ts): its
 * own small bundle, which bin/keyhold-agent.js loads instead of the CLI for that command line.
 */
const fastFile = resolve(outdir, 'fast-get-resource.cjs');
const fast = await build({
  absWorkingDir: pkg,
  entryPoints: [resolve(pkg, 'dist', 'resource-socket', 'fast-get-resource.js')],
  outfile: fastFile,
  bundle: true,
  platform: 'node',
  format: 'cjs',
  target: 'node20',
  metafile: true,
  logLevel: 'warning',
  legalComments: 'none',
  minifyWhitespace: true,
});
const fastModules = Object.keys(fast.metafile.inputs).map((p) => resolve(pkg, p));
const stray = fastModules.filter((p) => p.includes('/node_modules/') && !p.includes('/node_modules/@keyhold/'));
// It must stay small: a third-party module here (commander, zod) would cost every such start.
if (stray.length > 0) throw new Error(`fast-get-resource bundle: unexpected dependencies ${stray.join(', ')}`);
const fastInputs = [...new Set(fastModules.map(stampFileOf))].map(stamp);

writeFileSync(resolve(outdir, 'inputs.json'), JSON.stringify({ bundle: stamp(outfile), inputs, fast: { bundle: stamp(fastFile), inputs: fastInputs } }));
console.log(`keyhold-agent fast-get-resource bundle: ${fastModules.length} modules (${(statSync(fastFile).size / 1024).toFixed(0)} KiB)`);
console.log(`keyhold-agent bundle: ${modules.length} workspace modules (${inputs.length} stamps) → ${relative(pkg, outfile)} (${(source.length / 1024).toFixed(0)} KiB, code cache ${(statSync(`${outfile}.cache`).size / 1024).toFixed(0)} KiB)`);
