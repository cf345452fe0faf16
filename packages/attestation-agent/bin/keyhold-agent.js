#!/usr/bin/env node
// Runs the bundled CLI (dist/bundle, made by `pnpm run build`: one file with a V8 code cache, for a
// fast start) while it is current, i.e. every stamp recorded at bundling — the bundle itself, and for
// each workspace package bundled, its dist/.tsbuildinfo (rewritten by every `tsc -b` that emits) —
// still has its size and mtime; otherwise the compiled modules in dist/ directly.
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

function currentBundle() {
  try {
    const { bundle, inputs } = JSON.parse(readFileSync(join(dir, 'inputs.json'), 'utf8'));
    if (!Array.isArray(inputs) || inputs.length === 0 || !unchanged(bundle)) return undefined;
    return inputs.every(unchanged) ? join(dir, bundle.path) : undefined;
  } catch {
    return undefined;
  }
}

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
}

const bundle = currentBundle();
mark('loader:check');
if (bundle !== undefined) runBundle(bundle);
else import('../dist/bin/keyhold-agent.js');
