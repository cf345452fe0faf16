#!/usr/bin/env node
// Runs the bundled CLI (dist/bundle, made by `pnpm run build`: one file with a V8 code cache, for a
// fast start) while it is current, i.e. every stamp recorded at bundling — the bundle itself, and for
// each workspace package bundled, its dist/.tsbuildinfo (rewritten by every `tsc -b` that emits) —
// still has its size and mtime; otherwise the compiled modules in dist/ directly.
// `get-resource --resource-socket PATH RESOURCE` (the daemon fetches; nothing to attest here) runs
// from its own small bundle, dist/bundle/fast-get-resource.cjs, under the same rule; any other
// `get-resource` line is offered first to the cold fast path's bundle, dist/bundle/cold-get-resource.cjs
// (src/cold-start/: the command without commander and the rest of the CLI), which takes the plain
// forms and leaves the rest to the CLI.
//
// CommonJS (bin/package.json), not ESM: an ESM entry costs every start node's ESM loader and, for
// each builtin it imports, a facade that reads all of the builtin's exports (node:fs's pull in the
// streams modules) — tens of ms before the CLI runs.
'use strict';
/* eslint-disable @typescript-eslint/no-require-imports -- CommonJS on purpose, see above */
const { channel } = require('node:diagnostics_channel');
const { readFileSync, statSync } = require('node:fs');
const { createRequire } = require('node:module');
const { dirname, join } = require('node:path');
const vm = require('node:vm');

const dir = join(__dirname, '..', 'dist', 'bundle');
// Phase marks for bench/time-to-secret.bench.ts (src/phase-channel.ts).
const phases = channel('keyhold:agent:phase');
const mark = (name) => phases.hasSubscribers && phases.publish(name);

function unchanged(entry) {
  const st = statSync(join(dir, entry.path));
  return st.size === entry.size && st.mtimeMs === entry.mtimeMs;
}

/** dist/bundle/inputs.json: the bundles and the stamps of what each was built from. */
function manifest() {
  try {
    return JSON.parse(readFileSync(join(dir, 'inputs.json'), 'utf8'));
  } catch {
    return undefined;
  }
}

/** The bundle file named by `entry` ({ bundle, inputs }) while it and all its inputs are unchanged. */
function current(entry) {
  try {
    const { bundle, inputs } = entry;
    if (!Array.isArray(inputs) || inputs.length === 0 || !unchanged(bundle)) return undefined;
    return inputs.every(unchanged) ? join(dir, bundle.path) : undefined;
  } catch {
    return undefined;
  }
}

/**
 * `get-resource --resource-socket PATH ...`: the fast path's own small bundle handles the plain
 * forms (src/resource-socket/fast-get-resource.ts); undefined when it does not apply.
 */
function fastGetResource(built) {
  const args = process.argv.slice(2);
  if (args[0] !== 'get-resource' || !args.some((a) => a === '--resource-socket' || a.startsWith('--resource-socket='))) return undefined;
  const file = built?.fast !== undefined ? current(built.fast) : undefined;
  if (file === undefined) return undefined;
  return require(file).fastGetResource(args, { stdout: process.stdout, stderr: process.stderr });
}

/** Compile a bundle with its code cache and run it as a CommonJS module: its exports. */
function runBundle(file) {
  // Pure ASCII (scripts/bundle-cli.mjs checks): latin1 is exact, and cheaper to decode than utf8.
  const source = readFileSync(file, 'latin1');
  let cachedData;
  try {
    cachedData = readFileSync(`${file}.cache`);
  } catch {
    // No cache: V8 compiles from source.
  }
  // Must stay identical to the wrapper in scripts/bundle-cli.mjs, or V8 rejects the cache.
  const script = new vm.Script(`(function (exports, require, module, __filename, __dirname) {${source}\n})`, { filename: file, ...(cachedData !== undefined ? { cachedData } : {}) });
  mark('loader:compile');
  const mod = { exports: {} };
  script.runInThisContext()(mod.exports, createRequire(file), mod, file, dirname(file));
  return mod.exports;
}

/**
 * `get-resource` without the CLI (src/cold-start/cold-get-resource.ts), when its bundle is current
 * and takes this command line: the exit code's promise; undefined otherwise.
 */
function coldGetResource(built) {
  const args = process.argv.slice(2);
  if (args[0] !== 'get-resource') return undefined;
  const file = built?.cold !== undefined ? current(built.cold) : undefined;
  if (file === undefined) return undefined;
  mark('loader:check');
  const io = { stdout: process.stdout, stderr: process.stderr };
  return runBundle(file).coldGetResource(args, io, process.env);
}

/** Exit once what was written to stdout and stderr is handed to the OS (as src/bin/keyhold-agent.ts). */
function exitWhenWritten(code) {
  process.exitCode = code;
  process.stdout.write('', () => process.stderr.write('', () => process.exit(code)));
}

const built = manifest();
// A get-resource line is offered to the socket fast path, then to the cold one; each takes it or
// returns undefined having done nothing.
const run = fastGetResource(built) ?? coldGetResource(built);
if (run !== undefined) {
  run.then(exitWhenWritten, (err) => {
    process.stderr.write(`keyhold-agent: ${err instanceof Error ? err.message : String(err)}\n`);
    exitWhenWritten(1);
  });
} else {
  const bundle = built !== undefined ? current(built) : undefined;
  mark('loader:check');
  if (bundle !== undefined) runBundle(bundle);
  else import('../dist/bin/keyhold-agent.js');
}
