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
import { dirname, join, relative, resolve, sep } from 'node:path';
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
/**
 * koffi's native module, the very file koffi's own entry loads here now (its loader script picks it
 * by platform and libc, then adds deprecated aliases the agent does not use): the bundles require
 * this file directly (src/tpm/internal/koffi-entry.ts is replaced), which skips resolving the koffi
 * package (node's ESM resolver for its `exports` map) and running its loader, several ms of every
 * TPM command's start. Its version is checked against koffi's package as koffi does, and the file
 * is stamped with the bundles' inputs: a reinstalled or moved koffi makes the loader fall back to
 * dist/ (which requires the package by name) until the next build.
 */
const koffiPackage = createRequire(resolve(pkg, 'package.json')).resolve('koffi');
const koffiNative = (() => {
  const req = createRequire(import.meta.url);
  const before = new Set(Object.keys(req.cache));
  const koffi = req(koffiPackage);
  const loaded = Object.keys(req.cache).filter((p) => p.endsWith('.node') && !before.has(p));
  const version = JSON.parse(readFileSync(join(dirname(koffiPackage), 'package.json'), 'utf8')).version;
  if (loaded.length !== 1 || koffi.version !== version) throw new Error(`keyhold-agent bundle: cannot tell which native module koffi ${version} loads (${loaded.join(', ') || 'none'}; native version ${koffi.version})`);
  return loaded[0];
})();
const resolvedKoffi = {
  name: 'resolved-koffi-native',
  setup(b) {
    b.onLoad({ filter: /[\\/]tpm[\\/]internal[\\/]koffi-entry\.js$/ }, () => ({
      contents: `const { join } = require('node:path');\nexport function koffiEntry() { return join(__dirname, ${JSON.stringify(relative(resolve(pkg, 'dist', 'bundle'), koffiNative))}); }\n`,
      loader: 'js',
    }));
  },
};
/**
 * commander is only partly used by some bundles (the cold get-resource bundle uses no parser; it
 * reaches @keyhold/command-line's index only for its error and URL helpers, which re-exports
 * commander): declared free of side effects, esbuild leaves it out of a bundle that uses none of it.
 */
const commanderWithoutSideEffects = {
  name: 'commander-without-side-effects',
  setup(b) {
    b.onResolve({ filter: /^commander$/ }, async (args) => {
      if (args.pluginData?.fromPlugin === true) return undefined;
      const r = await b.resolve(args.path, { kind: args.kind, resolveDir: args.resolveDir, importer: args.importer, pluginData: { fromPlugin: true } });
      return { ...r, sideEffects: false };
    });
  },
};
const outdir = resolve(pkg, 'dist', 'bundle');
rmSync(outdir, { recursive: true, force: true });

/** Must stay identical to the wrapper in bin/keyhold-agent.js, or V8 rejects the cache. */
const wrap = (src) => `(function (exports, require, module, __filename, __dirname) {${src}\n})`;

/**
 * Bundle `entry` (a compiled module under dist/) into `outfile`: one whitespace-minified, pure-ASCII
 * CommonJS file (koffi external), and a V8 script of it for the code cache. Returns esbuild's
 * metafile inputs, the source and the script.
 */
async function bundleWithCache(entry, outfile, plugins) {
  const result = await build({
    absWorkingDir: pkg,
    entryPoints: [resolve(pkg, 'dist', entry)],
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
    plugins: [resolvedKoffi, ...plugins],
    logLevel: 'warning',
    legalComments: 'none',
    // Fewer bytes to read at every start (names are kept for stack traces); pure ASCII (esbuild's
    // default charset, and no comments left), which the loader reads as latin1, its cheapest decoding.
    minifyWhitespace: true,
  });
  // The loader wraps the source in a function; a leading `#!` line would not parse there.
  const source = readFileSync(outfile, 'utf8').replace(/^#!.*\n/, '');
  // The loader decodes the bundle as latin1, which is exact only for ASCII.
  if (/[^\x00-\x7f]/.test(source)) throw new Error(`${relative(pkg, outfile)}: not pure ASCII; bin/keyhold-agent.js reads it as latin1`);
  writeFileSync(outfile, source);
  // What esbuild read, and what of it is in the output (tree shaking leaves some inputs out).
  const inOutput = Object.entries(Object.values(result.metafile.outputs)[0]?.inputs ?? {}).filter(([, v]) => v.bytesInOutput > 0);
  return { inputs: Object.keys(result.metafile.inputs), inOutput: inOutput.map(([p]) => p), source, script: new vm.Script(wrap(source), { filename: outfile }) };
}

/** A stand-in for process.stdout/stderr that discards what is written (and says so to callbacks). */
const sink = () => ({
  write(_chunk, enc, cb) {
    (typeof enc === 'function' ? enc : cb)?.();
    return true;
  },
});

/**
 * Run a bundle's script once as the loader does, with `args` as the command line (output
 * discarded), and wait for the command to be over: every function it runs is compiled and so lands
 * in the code cache. Its module.exports.
 */
async function trainingRun(script, file, args) {
  const { argv, exitCode, exit } = process;
  const { write: out } = process.stdout;
  const { write: err } = process.stderr;
  process.argv = [process.execPath, file, ...args];
  process.stdout.write = sink().write;
  process.stderr.write = sink().write;
  process.exitCode = undefined;
  let exited;
  // The entry exits the process once the command is over (src/bin/keyhold-agent.ts); not this one.
  process.exit = (code) => {
    exited = code ?? process.exitCode ?? 0;
  };
  try {
    const mod = { exports: {} };
    script.runInThisContext()(mod.exports, createRequire(file), mod, file, dirname(file));
    for (let waited = 0; args.length > 0 && exited === undefined && waited < 10_000; waited += 10) await new Promise((r) => setTimeout(r, 10));
    return mod.exports;
  } finally {
    process.argv = argv;
    process.stdout.write = out;
    process.stderr.write = err;
    process.exitCode = exitCode;
    process.exit = exit;
  }
}

/** What a training get-resource names: a resource, and a TPM that is not there (device layer: TPM_UNAVAILABLE). */
const TRAINING_RESOURCE = 'kbs:///keyhold/code-cache/training';
const NO_TPM = ['--tcti', 'device:/nonexistent/keyhold-code-cache-training'];

/** A certificate for the training EK (a throwaway self-signed CA, @peculiar/x509): DER. */
async function trainingEkCertificate(spkiDer) {
  await import('reflect-metadata');
  const { X509CertificateGenerator } = await import('@peculiar/x509');
  const { webcrypto } = await import('node:crypto');
  const alg = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' };
  const ca = await webcrypto.subtle.generateKey(alg, false, ['sign', 'verify']);
  const now = Date.now();
  const cert = await X509CertificateGenerator.create({
    serialNumber: '01',
    subject: 'CN=keyhold code-cache training EK',
    issuer: 'CN=keyhold code-cache training CA',
    notBefore: new Date(now - 3600_000),
    notAfter: new Date(now + 3600_000),
    publicKey: spkiDer,
    signingKey: ca.privateKey,
    signingAlgorithm: alg,
  });
  return new Uint8Array(cert.rawData);
}

/**
 * A whole get-resource, three times (as ocicrypt's cmd mode runs it: the AK at 0x81010002 already there),
 * through a bundle's own CLI and session code (`run(args, io, opener)`), so that what runs after the
 * TPM is open — the handshake over node:http, the KBS's answers parsed, tee key, evidence, JWE
 * decryption, output — is compiled into its cache as well (a get-resource then compiles ~7 ms less
 * on the bench machine). There is no TPM nor KBS at build time: the TPM is the agent's in-memory
 * software TPM (for tests and benchmarks; a session only ever gets it here, through the bundle's
 * codeCacheTraining.opener) and the KBS a stand-in on loopback that answers like one (a challenge, an
 * unsigned token, the secret as a JWE to the tee key). Nothing it produces is kept but the compiled code.
 */
async function trainGetResource(run) {
  const { createSoftwareTpm } = await import('../dist/tpm/software-tpm.js');
  const { EK_CERT_NV_INDEX } = await import('../dist/tpm/device.js');
  const { FlattenedEncrypt } = await import('jose');
  const { createServer } = await import('node:http');
  const { createPublicKey, generateKeyPairSync, randomBytes } = await import('node:crypto');
  const { mkdtempSync } = await import('node:fs');
  const { tmpdir } = await import('node:os');
  const { akQualifiedNameUnderEk } = await import('../dist/attester/ek-public-cache.js');
  const { tpm2bPublicToSpkiDer } = await import('../dist/tpm/public-area.js');
  const rsa = () => generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey;
  const keys = { akKeys: { rsa: rsa() }, ekKeys: { rsa: rsa() } };
  const nv = new Map();
  /**
   * The same software TPM for each run (a session closes its device): the AK persisted at
   * 0x81010002, reported with the qualified name a TPM gives a child of the EK, and an EK
   * certificate in NV, so that the runs after the first take the EK-public and EK-certificate
   * caches' paths as a node's runs do.
   */
  const softwareTpm = async () => {
    const tpm = createSoftwareTpm({ ...keys, nv });
    const ek = await tpm.createEk('rsa');
    const { key } = await tpm.createAk(ek, 'rsa');
    const qualifiedName = akQualifiedNameUnderEk(ek.name, key.name);
    if (!nv.has(EK_CERT_NV_INDEX.rsa)) nv.set(EK_CERT_NV_INDEX.rsa, await trainingEkCertificate(tpm2bPublicToSpkiDer(ek.publicArea)));
    await tpm.persistKey(key, 0x81010002);
    await tpm.flushKey(key);
    await tpm.flushKey(ek);
    const loadPersistentKey = tpm.loadPersistentKey.bind(tpm);
    tpm.loadPersistentKey = async (handle) => Object.assign(await loadPersistentKey(handle), { qualifiedName });
    return tpm;
  };
  let teePubkey;
  const server = createServer((req, res) => {
    let body = '';
    req.on('data', (c) => (body += c));
    req.on('end', async () => {
      const json = (status, value, headers = {}) => {
        res.writeHead(status, { 'content-type': 'application/json', ...headers });
        res.end(JSON.stringify(value));
      };
      if (req.url === '/kbs/v0/auth') return json(200, { nonce: randomBytes(32).toString('base64'), 'extra-params': {} }, { 'set-cookie': 'kbs-session-id=code-cache-training; Path=/' });
      if (req.url === '/kbs/v0/attest') {
        teePubkey = JSON.parse(body)['runtime-data']['tee-pubkey'];
        const claims = Buffer.from(JSON.stringify({ exp: Math.floor(Date.now() / 1000) + 60 })).toString('base64url');
        return json(200, { token: `e30.${claims}.c2ln` });
      }
      const jwe = await new FlattenedEncrypt(randomBytes(32)).setProtectedHeader({ alg: teePubkey.alg ?? 'ECDH-ES+A256KW', enc: 'A256GCM' }).encrypt(createPublicKey({ key: teePubkey, format: 'jwk' }));
      return json(200, jwe);
    });
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  const stateDir = mkdtempSync(join(tmpdir(), 'keyhold-code-cache-'));
  try {
    const url = `http://127.0.0.1:${server.address().port}`;
    const args = ['get-resource', TRAINING_RESOURCE, '--url', url, ...NO_TPM, '--ak-handle', '0x81010002', '--state-dir', stateDir];
    for (let i = 0; i < 3; i++) {
      const errors = [];
      const code = await run(args, { stdout: sink(), stderr: { write: (c, enc, cb) => (errors.push(String(c)), sink().write(c, enc, cb)) } }, await softwareTpm());
      // A training run that fails would leave the cache without the path it is for.
      if (code !== 0) throw new Error(`keyhold-agent bundle: the code-cache training get-resource failed (${code}): ${errors.join('')}`);
    }
    // The later runs named the EK and its certificate from the caches only if the first kept them.
    for (const f of ['ek-rsa.pub', 'ek-rsa.crt']) if (!existsSync(join(stateDir, f))) throw new Error(`keyhold-agent bundle: the code-cache training kept no ${f}`);
  } finally {
    server.close();
    rmSync(stateDir, { recursive: true, force: true });
  }
}

// The CLI.
const outfile = resolve(outdir, 'keyhold-agent.cjs');
const cli = await bundleWithCache(join('bin', 'keyhold-agent.js'), outfile, [lazyChildProcessForCommander]);
// Start-up and --version: commander and the CLI declaration.
const cliExports = await trainingRun(cli.script, outfile, ['--version']);
// get-resource up to the TPM, which is not there: the module graph of the TPM commands (KBS client,
// protocol schemas, tpm2-tss bindings) gets compiled too, as ocicrypt's once-per-key runs need it.
await trainingRun(cli.script, outfile, ['get-resource', TRAINING_RESOURCE, '--url', 'http://127.0.0.1:9', ...NO_TPM]);
const cliTraining = cliExports.codeCacheTraining;
if (cliTraining === undefined) throw new Error('keyhold-agent bundle: no codeCacheTraining export (src/bin/keyhold-agent.ts)');
await trainGetResource((args, io, tpm) => cliTraining.runAgentCli(args, io, {}, cliTraining.opener(tpm)));
writeFileSync(`${outfile}.cache`, cli.script.createCachedData());
const source = cli.source;

/**
 * The cold fast path of get-resource (src/cold-start/cold-get-resource.ts): the command without
 * commander and the other commands, in its own bundle and code cache, trained the same way.
 */
const coldFile = resolve(outdir, 'cold-get-resource.cjs');
const cold = await bundleWithCache(join('cold-start', 'cold-get-resource.js'), coldFile, [commanderWithoutSideEffects]);
const coldTraining = (await trainingRun(cold.script, coldFile, [])).codeCacheTraining;
if (coldTraining === undefined) throw new Error('keyhold-agent cold bundle: no codeCacheTraining export (src/cold-start/cold-get-resource.ts)');
const discard = { stdout: sink(), stderr: sink() };
if ((await coldTraining.coldGetResource(['get-resource', TRAINING_RESOURCE, '--url', 'http://127.0.0.1:9', ...NO_TPM], discard, {})) !== 1) {
  throw new Error('keyhold-agent cold bundle: the training get-resource without a TPM did not fail as expected');
}
await trainGetResource((args, io, tpm) => coldTraining.coldGetResource(args, io, {}, coldTraining.opener(tpm)));
writeFileSync(`${coldFile}.cache`, cold.script.createCachedData());
const coldStray = cold.inOutput.filter((p) => /[\\/]node_modules[\\/](\.pnpm[\\/])?(commander|pino|@grpc)/.test(p));
// It must stay small: the CLI parser, the logger or gRPC here would cost every get-resource start.
if (coldStray.length > 0) throw new Error(`cold-get-resource bundle: unexpected dependencies ${coldStray.join(', ')}`);

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
/** The stamps of a bundle's workspace inputs (and of koffi's native module it requires by path). */
const workspaceModules = (inputs) =>
  inputs
    .filter((p) => !p.startsWith('keyhold-lazy:'))
    .map((p) => resolve(pkg, p))
    .filter((p) => !p.includes('/node_modules/') || p.includes('/node_modules/@keyhold/'));
const modules = workspaceModules(cli.inputs);
const inputs = [...new Set([...modules.map(stampFileOf), koffiNative])].map(stamp);
const coldInputs = [...new Set([...workspaceModules(cold.inputs).map(stampFileOf), koffiNative])].map(stamp);

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

writeFileSync(resolve(outdir, 'inputs.json'), JSON.stringify({ bundle: stamp(outfile), inputs, fast: { bundle: stamp(fastFile), inputs: fastInputs }, cold: { bundle: stamp(coldFile), inputs: coldInputs } }));
console.log(`keyhold-agent fast-get-resource bundle: ${fastModules.length} modules (${(statSync(fastFile).size / 1024).toFixed(0)} KiB)`);
console.log(`keyhold-agent cold-get-resource bundle: ${relative(pkg, coldFile)} (${(cold.source.length / 1024).toFixed(0)} KiB, code cache ${(statSync(`${coldFile}.cache`).size / 1024).toFixed(0)} KiB)`);
console.log(`keyhold-agent bundle: ${modules.length} workspace modules (${inputs.length} stamps) → ${relative(pkg, outfile)} (${(source.length / 1024).toFixed(0)} KiB, code cache ${(statSync(`${outfile}.cache`).size / 1024).toFixed(0)} KiB)`);
