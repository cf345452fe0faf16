/**
 * Quote verification benchmark. Run from the repo root:
 *   node --import tsx packages/verifier/bench/verify-quote.bench.ts
 * Prints figures; asserts nothing. Baselines measured in the same run: node:crypto's bare RSASSA
 * verify of the same message (the floor for any verifier) and one `tpm2_checkquote` process.
 */
import { spawnSync } from 'node:child_process';
import { constants, createPublicKey, verify } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { decodeUnverifiedTpm2ToolsPcrFile, verifyQuote } from '../src/index.js';

const repoRoot = fileURLToPath(new URL('../../../', import.meta.url));
const kc = path.resolve(repoRoot, '../shared/corpus/quotes/keylime-checkquote');
if (!existsSync(kc)) {
  console.log(`corpus absent (${kc}); nothing to measure`);
  process.exit(0);
}
const f = (n: string): Buffer => readFileSync(path.join(kc, n));
const akPem = f('akpub.pem');
const akDer = createPublicKey(akPem).export({ format: 'der', type: 'spki' });
const message = f('quote.out');
const signature = f('quotesig.out');
const bank = decodeUnverifiedTpm2ToolsPcrFile(f('quotepcr.out'))[0];
if (bank === undefined) throw new Error('no PCR bank');
const input = { message, signature, akPublicKeyDer: akDer, pcrs: { bank: 'sha256' as const, values: bank.values }, expectedExtraData: f('rand.out') };

function rate(label: string, n: number, fn: () => void): number {
  for (let i = 0; i < 200; i++) fn();
  const t0 = performance.now();
  for (let i = 0; i < n; i++) fn();
  const perSec = n / ((performance.now() - t0) / 1000);
  console.log(`${label.padEnd(44)} ${perSec.toFixed(0).padStart(8)} /s`);
  return perSec;
}

const N = 5_000;
const key = createPublicKey(akPem);
const rawSig = signature.subarray(6);
const base = rate('baseline: node:crypto RSASSA-SHA256 verify', N, () => {
  verify('sha256', message, { key, padding: constants.RSA_PKCS1_PADDING }, rawSig);
});
const ours = rate('verifyQuote (parse + key import + all checks)', N, () => {
  verifyQuote(input);
});
console.log(`verifyQuote / bare verify throughput ratio: ${(ours / base).toFixed(2)}`);

const t0 = performance.now();
const r = spawnSync('tpm2_checkquote', ['-u', path.join(kc, 'akpub.pem'), '-m', path.join(kc, 'quote.out'), '-s', path.join(kc, 'quotesig.out'), '-f', path.join(kc, 'quotepcr.out'), '-g', 'sha256', '-q', f('rand.out').toString('hex')]);
const ms = performance.now() - t0;
if (r.status === 0) console.log(`tpm2_checkquote (one process, incl. spawn): ${ms.toFixed(1)} ms vs verifyQuote ${(1000 / ours).toFixed(3)} ms`);
