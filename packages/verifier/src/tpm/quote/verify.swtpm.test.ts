import { createPublicKey } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import { createServer } from 'node:net';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePorts, spawnProcess, waitForPort, type SpawnedProcess } from '@keyhold/test-harness';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { VerifierError } from '../../errors.js';
import { verifyQuote } from './verify.js';

/**
 * Differential test: Keyhold's verdict must equal `tpm2_checkquote` (tpm2-tools 5.4) on quotes made
 * by a real software TPM (swtpm) and on the corpus quotes, for valid and tampered variants.
 * Known, deliberate differences are tested separately at the end of this file.
 */

const repoRoot = fileURLToPath(new URL('../../../../../', import.meta.url));
const corpus = path.resolve(repoRoot, '../shared/corpus/quotes');
const haveTools = existsSync('/usr/bin/swtpm') && existsSync('/usr/bin/tpm2_checkquote');
if (!haveTools) console.warn('skipping swtpm / tpm2_checkquote cross-checks: swtpm or tpm2-tools missing');

/** Test-side reader of the tpm2-tools PCR file (see verify.test.ts), single bank. */
function readPcrFileForTest(buf: Buffer): Map<number, Uint8Array> {
  const sizeofSelect = buf[6] as number;
  const indices: number[] = [];
  for (let p = 0; p < sizeofSelect * 8; p++) if (((buf[7 + (p >> 3)] as number) >> (p & 7)) & 1) indices.push(p);
  const digests: Uint8Array[] = [];
  for (let l = 0; l < buf.readUInt32LE(132); l++) {
    const base = 136 + l * 532;
    for (let d = 0; d < buf.readUInt32LE(base); d++) {
      const slot = base + 4 + d * 66;
      digests.push(Uint8Array.from(buf.subarray(slot + 2, slot + 2 + buf.readUInt16LE(slot))));
    }
  }
  return new Map(indices.map((i, k) => [i, digests[k] as Uint8Array]));
}

/** Byte offset in a tpm2-tools PCR file of the first value byte of the n-th digest. */
const pcrFileValueOffset = (n: number): number => 136 + Math.floor(n / 8) * 532 + 4 + (n % 8) * 66 + 2;

interface QuoteFiles {
  ak: string; // PEM SPKI
  msg: string;
  sig: string;
  pcrs: string;
  nonceHex: string;
  hash: 'sha256' | 'sha384';
}

function flipFile(src: string, dst: string, offset: number): string {
  const b = readFileSync(src);
  const at = offset < 0 ? b.length + offset : offset;
  b[at] = (b[at] as number) ^ 0x01;
  writeFileSync(dst, b);
  return dst;
}

function checkquote(f: QuoteFiles): number {
  const r = spawnSync('tpm2_checkquote', ['-u', f.ak, '-m', f.msg, '-s', f.sig, '-f', f.pcrs, '-g', f.hash, '-q', f.nonceHex], { encoding: 'utf8' });
  return r.status ?? -1;
}

function keyholdAccepts(f: QuoteFiles): boolean {
  try {
    verifyQuote({
      message: readFileSync(f.msg),
      signature: readFileSync(f.sig),
      akPublicKeyDer: createPublicKey(readFileSync(f.ak)).export({ format: 'der', type: 'spki' }),
      pcrs: { bank: 'sha256', values: readPcrFileForTest(readFileSync(f.pcrs)) },
      expectedExtraData: Buffer.from(f.nonceHex, 'hex'),
    });
    return true;
  } catch (err) {
    if (err instanceof VerifierError) return false;
    throw err;
  }
}

/** Valid quote plus the four tampered variants, written next to the originals. */
function variants(f: QuoteFiles, dir: string, tag: string): [string, QuoteFiles, boolean][] {
  const msgLen = readFileSync(f.msg).length;
  const wrongNonce = (Number.parseInt(f.nonceHex.slice(0, 2), 16) ^ 1).toString(16).padStart(2, '0') + f.nonceHex.slice(2);
  return [
    ['valid', f, true],
    ['message bit flipped (clock)', { ...f, msg: flipFile(f.msg, path.join(dir, `${tag}.msg.bad`), msgLen - 60) }, false],
    ['signature bit flipped', { ...f, sig: flipFile(f.sig, path.join(dir, `${tag}.sig.bad`), -1) }, false],
    ['PCR value bit flipped', { ...f, pcrs: flipFile(f.pcrs, path.join(dir, `${tag}.pcrs.bad`), pcrFileValueOffset(0) + 5) }, false],
    ['wrong nonce', { ...f, nonceHex: wrongNonce }, false],
  ];
}

/** A free port P with P+1 also free: the swtpm TCTI expects the control channel at P+1. */
async function swtpmPort(): Promise<number> {
  for (;;) {
    const [p] = (await freePorts(1)) as [number];
    const free = await new Promise<boolean>((resolve) => {
      const srv = createServer();
      srv.once('error', () => resolve(false));
      srv.listen(p + 1, '127.0.0.1', () => srv.close(() => resolve(true)));
    });
    if (free && p < 65535) return p;
  }
}

describe.skipIf(!haveTools)('verifyQuote agrees with tpm2_checkquote', () => {
  let dir = '';
  let swtpm: SpawnedProcess | undefined;
  let env: NodeJS.ProcessEnv = {};

  const tpm2 = (...args: string[]): string => {
    const r = spawnSync(args[0] as string, args.slice(1), { cwd: dir, env, encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`${args.join(' ')} failed (${r.status}):\n${r.stderr}`);
    return r.stdout;
  };

  const makeQuote = (tag: string, ak: { G: string; g: 'sha256' | 'sha384'; s: string }, nonceHex: string): QuoteFiles => {
    tpm2('tpm2_createak', '-C', 'ek.ctx', '-c', `${tag}.ctx`, '-G', ak.G, '-g', ak.g, '-s', ak.s, '-u', `${tag}.pem`, '-n', `${tag}.name`, '-f', 'pem');
    tpm2('tpm2_flushcontext', '-t');
    const all = [...Array(24).keys()].join(',');
    tpm2('tpm2_quote', '-c', `${tag}.ctx`, '-l', `sha256:${all}`, '-q', nonceHex, '-m', `${tag}.msg`, '-s', `${tag}.sig`, '-o', `${tag}.pcrs`, '-g', ak.g, '--scheme', ak.s);
    tpm2('tpm2_flushcontext', '-t');
    return { ak: path.join(dir, `${tag}.pem`), msg: path.join(dir, `${tag}.msg`), sig: path.join(dir, `${tag}.sig`), pcrs: path.join(dir, `${tag}.pcrs`), nonceHex, hash: ak.g };
  };

  const quotes: Record<string, QuoteFiles> = {};

  beforeAll(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'keyhold-quote-'));
    const port = await swtpmPort();
    const ctrl = port + 1;
    swtpm = spawnProcess({
      name: 'swtpm',
      command: 'swtpm',
      args: ['socket', '--tpm2', '--server', `type=tcp,port=${port}`, '--ctrl', `type=tcp,port=${ctrl}`, '--tpmstate', `dir=${dir}`, '--flags', 'not-need-init,startup-clear'],
    });
    await waitForPort(port, swtpm);
    env = { ...process.env, TPM2TOOLS_TCTI: `swtpm:host=127.0.0.1,port=${port}` };
    tpm2('tpm2_pcrextend', `8:sha256=${'ab'.repeat(32)}`);
    tpm2('tpm2_pcrextend', `16:sha256=${'cd'.repeat(32)}`);
    tpm2('tpm2_createek', '-c', 'ek.ctx', '-G', 'rsa', '-u', 'ek.pub');
    tpm2('tpm2_flushcontext', '-t');
    quotes['rsa-rsassa-sha256'] = makeQuote('rsa256', { G: 'rsa', g: 'sha256', s: 'rsassa' }, '5ca1ab1e'.repeat(8));
    quotes['rsa-rsassa-sha384'] = makeQuote('rsa384', { G: 'rsa', g: 'sha384', s: 'rsassa' }, '0badc0de'.repeat(8));
    quotes['ecc-p256-ecdsa-sha256'] = makeQuote('ecc256', { G: 'ecc', g: 'sha256', s: 'ecdsa' }, 'feedface'.repeat(5));
    quotes['ecc-p384-ecdsa-sha384'] = makeQuote('ecc384', { G: 'ecc384', g: 'sha384', s: 'ecdsa' }, '00112233');
    quotes['rsa-rsapss-sha256'] = makeQuote('rsapss', { G: 'rsa', g: 'sha256', s: 'rsapss' }, 'c0ffee00'.repeat(8));
  }, 60_000);

  afterAll(async () => {
    await swtpm?.stop();
    if (dir !== '') rmSync(dir, { recursive: true, force: true });
  });

  for (const tag of ['rsa-rsassa-sha256', 'rsa-rsassa-sha384', 'ecc-p256-ecdsa-sha256', 'ecc-p384-ecdsa-sha384']) {
    it(`swtpm ${tag}: same verdict on the valid quote and every tampered variant`, () => {
      const q = quotes[tag] as QuoteFiles;
      for (const [name, f, valid] of variants(q, dir, tag)) {
        const rc = checkquote(f);
        expect(rc === 0, `tpm2_checkquote on ${name}`).toBe(valid);
        expect(keyholdAccepts(f), `keyhold on ${name}`).toBe(rc === 0);
      }
    });
  }

  it('swtpm sha384 signing scheme: pcrDigest is SHA-384 over the SHA-256 bank (TPM 2.0 Part 3 §18.4)', () => {
    const q = quotes['rsa-rsassa-sha384'] as QuoteFiles;
    const msg = readFileSync(q.msg);
    expect(msg.readUInt16BE(msg.length - 50)).toBe(48); // TPM2B_DIGEST pcrDigest.size
  });

  it.skipIf(!existsSync(corpus))('corpus quotes: same verdict on valid and tampered variants', () => {
    const kc = path.join(corpus, 'keylime-checkquote');
    const ki = path.join(corpus, 'keylime-inline');
    const sets: [string, QuoteFiles][] = [
      ['kc', { ak: path.join(kc, 'akpub.pem'), msg: path.join(kc, 'quote.out'), sig: path.join(kc, 'quotesig.out'), pcrs: path.join(kc, 'quotepcr.out'), nonceHex: readFileSync(path.join(kc, 'rand.out')).toString('hex'), hash: 'sha256' }],
      ['ki', { ak: path.join(ki, 'ak.pem'), msg: path.join(ki, 'quote.bin'), sig: path.join(ki, 'sig.bin'), pcrs: path.join(ki, 'pcrblob.bin'), nonceHex: Buffer.from('Ai5M5SjYjnkyv4P7itH1').toString('hex'), hash: 'sha256' }],
    ];
    for (const [tag, q] of sets) {
      for (const [name, f, valid] of variants(q, dir, tag)) {
        const rc = checkquote(f);
        expect(rc === 0, `tpm2_checkquote on ${tag} ${name}`).toBe(valid);
        expect(keyholdAccepts(f), `keyhold on ${tag} ${name}`).toBe(rc === 0);
      }
    }
  });

  // ---- Known differences, kept visible.

  it('swtpm RSAPSS: Keyhold verifies it (openssl agrees), tpm2_checkquote 5.4 cannot; tampering is rejected', () => {
    const q = quotes['rsa-rsapss-sha256'] as QuoteFiles;
    const raw = path.join(dir, 'rsapss.sig.raw');
    writeFileSync(raw, readFileSync(q.sig).subarray(6)); // TPMT_SIGNATURE header: sigAlg, hash, size
    const ossl = spawnSync('openssl', ['dgst', '-sha256', '-verify', q.ak, '-sigopt', 'rsa_padding_mode:pss', '-sigopt', 'rsa_pss_saltlen:digest', '-signature', raw, q.msg], { encoding: 'utf8' });
    expect(ossl.status).toBe(0);
    expect(checkquote(q)).not.toBe(0); // tpm2-tools 5.4 verifies RSASSA only
    for (const [name, f, valid] of variants(q, dir, 'rsapss')) {
      expect(keyholdAccepts(f), `keyhold on ${name}`).toBe(valid);
    }
  });
});
