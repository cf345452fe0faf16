// Build the owner console into dist/web: one hashed script and one hashed stylesheet (esbuild,
// everything bundled: no CDN), and index.html referencing them. No inline script or style is
// emitted, so the KBS's Content-Security-Policy needs no hashes.
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const out = join(root, 'dist', 'web');
await rm(out, { recursive: true, force: true });
await mkdir(join(out, 'assets'), { recursive: true });
const result = await build({
  entryPoints: { app: join(root, 'src/app/main.tsx') },
  bundle: true,
  format: 'esm',
  target: ['chrome120', 'firefox120', 'safari17'],
  minify: true,
  sourcemap: false,
  legalComments: 'none',
  jsx: 'automatic',
  jsxImportSource: 'preact',
  entryNames: '[name]-[hash]',
  outdir: join(out, 'assets'),
  metafile: true,
  logLevel: 'warning',
});
const outputs = Object.keys(result.metafile.outputs).map((p) => basename(p));
const js = outputs.find((f) => f.endsWith('.js'));
const css = outputs.find((f) => f.endsWith('.css'));
if (js === undefined || css === undefined) throw new Error(`console build: expected one .js and one .css, got ${outputs.join(', ')}`);
const html = (await readFile(join(root, 'src/app/index.html'), 'utf8')).replace('%JS%', js).replace('%CSS%', css);
if (/<script(?![^>]*\bsrc=)|\sstyle=|<style/i.test(html)) throw new Error('console build: index.html must not contain inline script or style (CSP)');
await writeFile(join(out, 'index.html'), html);
const sizes = Object.entries(result.metafile.outputs).map(([p, o]) => `${basename(p)} ${(o.bytes / 1024).toFixed(1)} KiB`);
console.log(`console built: ${sizes.join(', ')}`);
