#!/usr/bin/env node
// Runs the bundled CLI (dist/bundle, made by `pnpm run build`: one file with a V8 code cache, for a
// fast start) while it is current, i.e. every workspace file it was built from still has the size and
// mtime recorded at bundling; otherwise the compiled modules in dist/ directly.
import { channel } from 'node:diagnostics_channel';
import { readFileSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import vm from 'node:vm';

const dir = new URL('../dist/bundle/', import.meta.url);
// Phase marks for bench/time-to-secret.bench.ts (src/phase-channel.ts).
const phases = channel('keyhold:agent:phase');
const mark = (name) => phases.hasSubscribers && phases.publish(name);

function unchanged(entry) {
  const st = statSync(new URL(entry.path, dir));
  return st.size === entry.size && st.mtimeMs === entry.mtimeMs;
}

function currentBundle() {
  try {
    const { bundle, inputs } = JSON.parse(readFileSync(new URL('inputs.json', dir), 'utf8'));
    if (!Array.isArray(inputs) || inputs.length === 0 || !unchanged(bundle)) return undefined;
    return inputs.every(unchanged) ? fileURLToPath(new URL(bundle.path, dir)) : undefined;
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
else await import('../dist/bin/keyhold-agent.js');
