import { createPublicKey } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { startSwtpm, type RunningSwtpm } from '@keyhold/test-harness';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { run } from './verify-quote.js';

// Fixtures: ../shared/corpus/quotes (keylime test data, see its README.json); tampered variants and
// fresh swtpm quotes are made in the test.
const repoRoot = fileURLToPath(new URL('../../../../', import.meta.url));
const kc = path.resolve(repoRoot, '../shared/corpus/quotes/keylime-checkquote');
const ki = path.resolve(repoRoot, '../shared/corpus/quotes/keylime-inline');
const haveCorpus = existsSync(kc) && existsSync(ki);
if (!haveCorpus) console.warn(`skipping verify-quote corpus tests: ${kc} is absent`);
const haveCheckquote = spawnSync('tpm2_checkquote', ['--version']).status === 0;
const haveSwtpm = haveCheckquote && existsSync('/usr/bin/swtpm') && spawnSync('tpm2_quote', ['--version']).status === 0;
if (!haveSwtpm) console.warn('skipping swtpm / tpm2_checkquote comparisons: swtpm or tpm2-tools missing');

class Capture extends Writable {
  text = '';
  override _write(chunk: Buffer | string, _enc: BufferEncoding, cb: () => void): void {
    this.text += chunk.toString();
    cb();
  }
}

async function cli(argv: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const stdout = new Capture();
  const stderr = new Capture();
  const code = await run(argv, { stdout, stderr });
  return { code, stdout: stdout.text, stderr: stderr.text };
}

function checkquote(argv: string[]): { code: number | null; stdout: string } {
  const r = spawnSync('tpm2_checkquote', argv, { encoding: 'utf8' });
  return { code: r.status, stdout: r.stdout };
}

const dir = mkdtempSync(path.join(tmpdir(), 'keyhold-cli-quote-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

interface QuoteSet {
  ak: string;
  msg: string;
  sig: string;
  pcrs: string;
  nonceHex: string;
}

const flags = (q: QuoteSet): string[] => ['-u', q.ak, '-m', q.msg, '-s', q.sig, '-f', q.pcrs, '-g', 'sha256', '-q', q.nonceHex];

function tampered(src: string, offset: number, name: string): string {
  const b = readFileSync(src);
  const at = offset < 0 ? b.length + offset : offset;
  b[at] = (b[at] as number) ^ 0x01;
  const out = path.join(dir, name);
  writeFileSync(out, b);
  return out;
}

describe.skipIf(!haveCorpus)('keyhold verify-quote on the corpus quotes', () => {
  const nonce = haveCorpus ? readFileSync(path.join(kc, 'rand.out')).toString('hex') : '';
  const set: QuoteSet = { ak: path.join(kc, 'akpub.pem'), msg: path.join(kc, 'quote.out'), sig: path.join(kc, 'quotesig.out'), pcrs: path.join(kc, 'quotepcr.out'), nonceHex: nonce };
  const inline: QuoteSet = { ak: path.join(ki, 'ak.pem'), msg: path.join(ki, 'quote.bin'), sig: path.join(ki, 'sig.bin'), pcrs: path.join(ki, 'pcrblob.bin'), nonceHex: Buffer.from('Ai5M5SjYjnkyv4P7itH1').toString('hex') };

  it("takes tpm2_checkquote's flags and prints exactly its output (PEM, TPM2B_PUBLIC and DER AK; -q as hex or file)", async () => {
    const ok = await cli(flags(set));
    expect(ok).toMatchObject({ code: 0, stderr: '' });
    expect(ok.stdout).toMatch(/^pcrs:\n {2}sha256:\n {4}15: 0x0{64}\n {4}16: 0x9DBB[0-9A-F]{60}\n {4}22: 0xF{64}\nsig: [0-9a-f]{512}\n$/);
    if (haveCheckquote) {
      expect(checkquote(flags(set))).toEqual({ code: 0, stdout: ok.stdout });
      expect(checkquote(flags(inline))).toEqual({ code: 0, stdout: (await cli(flags(inline))).stdout });
    }
    const der = path.join(dir, 'ak.der');
    writeFileSync(der, createPublicKey(readFileSync(set.ak)).export({ format: 'der', type: 'spki' }));
    for (const ak of [path.join(kc, 'ak.pub'), der]) expect(await cli(flags({ ...set, ak }))).toEqual(ok);
    expect(await cli(['-u', set.ak, '-m', set.msg, '-s', set.sig, '-f', set.pcrs, '-q', path.join(kc, 'rand.out')])).toEqual(ok);
    // The long names, tpm2-tools' and Keyhold's earlier ones.
    expect(await cli(['--public', set.ak, '--message', set.msg, '--signature', set.sig, '--pcr', set.pcrs, '--qualification', `0x${nonce}`, '--hash-algorithm', 'sha256', '-F', 'plain'])).toEqual(ok);
    expect(await cli(['--ak', set.ak, '--message', set.msg, '--signature', set.sig, '--pcrs', set.pcrs, '--nonce', nonce])).toEqual(ok);
  });

  it('prints the verified claims with --json', async () => {
    const json = await cli([...flags(set), '--json']);
    expect(json.code).toBe(0);
    const readme = JSON.parse(readFileSync(path.join(kc, 'README.json'), 'utf8'));
    const claims = JSON.parse(json.stdout);
    expect(claims).toMatchObject({
      signatureScheme: 'rsassa',
      hashAlgorithm: 'sha256',
      pcrBank: 'sha256',
      extraData: readme.nonce_hex,
      qualifiedSigner: readme.decoded_quote.qualifiedSigner,
      pcrDigest: readme.decoded_quote.pcrDigest,
      clockInfo: { clock: String(readme.decoded_quote.clockInfo.clock), resetCount: 0, restartCount: 0, safe: true },
    });
    expect(Object.keys(claims.pcrs)).toEqual(['15', '16', '22']);
  });

  it('exits 1 with one line on stderr and nothing on stdout for tampered inputs, where tpm2_checkquote fails too', async () => {
    const cases: [Partial<QuoteSet>, string][] = [
      [{ msg: tampered(set.msg, 0x44, 'm') }, 'QUOTE_SIGNATURE_INVALID'],
      [{ msg: tampered(set.msg, 5, 'm5') }, 'QUOTE_WRONG_TYPE'],
      [{ sig: tampered(set.sig, 100, 's') }, 'QUOTE_SIGNATURE_INVALID'],
      [{ pcrs: tampered(set.pcrs, 0xd0, 'p') }, 'QUOTE_PCR_DIGEST_MISMATCH'],
      [{ nonceHex: `da${nonce.slice(2)}` }, 'QUOTE_EXTRA_DATA_MISMATCH'],
      [{ ak: path.join(kc, 'ekpub.pem') }, 'QUOTE_SIGNATURE_INVALID'],
      [{ ak: path.join(kc, 'ek.pub') }, 'QUOTE_SIGNATURE_INVALID'],
      [{ ak: path.join(kc, 'quote.out') }, 'QUOTE_INVALID_AK'],
      [{ ak: tampered(path.join(kc, 'ak.pub'), 3, 'akpub.bad') }, 'QUOTE_INVALID_AK'],
    ];
    for (const [over, code] of cases) {
      const q = { ...set, ...over };
      const r = await cli(flags(q));
      expect(r.code, code).toBe(1);
      expect(r.stdout).toBe('');
      expect(r.stderr).toMatch(new RegExp(`^keyhold verify-quote: invalid quote: .*\\(${code}\\)\\n$`));
      if (haveCheckquote && !q.ak.endsWith('.pub') && !q.ak.endsWith('.bad') && !q.ak.endsWith('quote.out')) expect(checkquote(flags(q)).code, code).toBe(1);
    }
    const wrongHash = await cli([...flags(set).slice(0, -4), '-g', 'sha384', '-q', nonce]);
    expect(wrongHash).toMatchObject({ code: 1, stdout: '' });
    expect(wrongHash.stderr).toBe('keyhold verify-quote: invalid quote: signed with sha256, -g says sha384\n');
  });

  it('exits 1 for a PCR file whose bank id was altered (tpm2_checkquote 5.4 accepts this one)', async () => {
    // Byte 5 is the high byte of the little-endian hash id: 0x000b becomes 0x010b.
    const r = await cli(flags({ ...set, pcrs: tampered(set.pcrs, 5, 'bank') }));
    expect(r.code).toBe(1);
    expect(r.stderr.split('\n')).toHaveLength(2);
    const truncated = path.join(dir, 'short.pcrs');
    writeFileSync(truncated, readFileSync(set.pcrs).subarray(0, 200));
    expect((await cli(flags({ ...set, pcrs: truncated }))).stderr).toMatch(/\(TPM_TRUNCATED\)\n$/);
  });

  it('exits 2 for usage errors, with --help on stdout and exit 0', async () => {
    const f = flags(set);
    for (const argv of [
      [],
      f.slice(0, 8),
      [...f, '--bogus'],
      [...f, 'extra'],
      [...f.slice(0, -2), '-q', 'xyz'],
      [...f.slice(0, -2), '-q', 'abc'],
      [...f.slice(0, -2), '-q', 'aa'.repeat(65)],
      [...f.slice(0, -4), '-g', 'md5', '-q', nonce],
      ['-u', set.ak, '-m', path.join(dir, 'does-not-exist'), ...f.slice(4)],
      ['-u', set.ak, '-m', set.msg, '-s', dir, ...f.slice(6)],
      [...f, '-l', 'sha256:15,16,22'],
    ]) {
      const r = await cli(argv);
      expect(r.code, argv.join(' ')).toBe(2);
      expect(r.stdout, argv.join(' ')).toBe('');
    }
    const help = await cli(['--help']);
    expect(help.code).toBe(0);
    expect(help.stdout).toMatch(/^Usage: keyhold verify-quote \[options\]/);
    expect(help.stdout).toMatch(/-u, --public <file>/);
  });

  it('works as `keyhold verify-quote` through the bin entry (real process)', () => {
    const bin = path.join(repoRoot, 'packages/cli/src/bin/keyhold.ts');
    const node = (argv: string[]): number | null =>
      spawnSync(process.execPath, ['--conditions=keyhold-source', '--import', 'tsx', bin, 'verify-quote', ...argv], { cwd: repoRoot, encoding: 'utf8' }).status;
    expect(node(flags(set))).toBe(0);
    expect(node(flags({ ...set, nonceHex: `da${nonce.slice(2)}` }))).toBe(1);
  });
});

describe.skipIf(!haveSwtpm)('keyhold verify-quote on fresh swtpm quotes, against tpm2_checkquote', () => {
  let tpm: RunningSwtpm | undefined;
  let work = '';
  const quotes: Record<string, QuoteSet & { tss: string; hash: 'sha256' | 'sha384' }> = {};

  beforeAll(async () => {
    tpm = await startSwtpm();
    work = mkdtempSync(path.join(tmpdir(), 'keyhold-swtpm-quote-'));
    const env = { ...process.env, TPM2TOOLS_TCTI: tpm.tcti };
    const tpm2 = (...args: string[]): void => {
      const r = spawnSync(args[0] as string, args.slice(1), { cwd: work, env, encoding: 'utf8' });
      if (r.status !== 0) throw new Error(`${args.join(' ')} failed (${r.status}):\n${r.stderr}`);
    };
    tpm2('tpm2_pcrextend', `16:sha256=${'cd'.repeat(32)}`);
    tpm2('tpm2_createek', '-c', 'ek.ctx', '-G', 'rsa', '-u', 'ek.pub');
    tpm2('tpm2_flushcontext', '-t');
    for (const [tag, G, g, nonce] of [
      ['rsa', 'rsa', 'sha256', '5ca1ab1e'.repeat(8)],
      ['ecc', 'ecc', 'sha256', 'feedface'.repeat(5)],
    ] as const) {
      tpm2('tpm2_createak', '-C', 'ek.ctx', '-c', `${tag}.ctx`, '-G', G, '-g', g, '-s', G === 'rsa' ? 'rsassa' : 'ecdsa', '-u', `${tag}.pem`, '-f', 'pem', '-n', `${tag}.name`);
      tpm2('tpm2_readpublic', '-c', `${tag}.ctx`, '-o', `${tag}.tss`);
      tpm2('tpm2_flushcontext', '-t');
      tpm2('tpm2_quote', '-c', `${tag}.ctx`, '-l', 'sha256:0,7,16', '-q', nonce, '-m', `${tag}.msg`, '-s', `${tag}.sig`, '-o', `${tag}.pcrs`, '-g', g);
      tpm2('tpm2_flushcontext', '-t');
      const p = (ext: string): string => path.join(work, `${tag}.${ext}`);
      quotes[tag] = { ak: p('pem'), tss: p('tss'), msg: p('msg'), sig: p('sig'), pcrs: p('pcrs'), nonceHex: nonce, hash: g };
    }
  }, 60_000);

  afterAll(async () => {
    await tpm?.stop();
    if (work !== '') rmSync(work, { recursive: true, force: true });
  });

  for (const tag of ['rsa', 'ecc']) {
    it(`${tag}: same stdout as tpm2_checkquote (PEM and TPM2B_PUBLIC AK), same verdict on a tampered quote`, async () => {
      const q = quotes[tag]!;
      const theirs = checkquote(flags(q));
      expect(theirs.code).toBe(0);
      const ours = await cli(flags(q));
      expect(ours).toEqual({ code: 0, stdout: theirs.stdout, stderr: '' });
      expect(await cli(flags({ ...q, ak: q.tss }))).toEqual(ours);
      expect(ours.stdout).toMatch(/^pcrs:\n {2}sha256:\n {4}0 : 0x[0-9A-F]{64}\n {4}7 : 0x[0-9A-F]{64}\n {4}16: 0x[0-9A-F]{64}\nsig: [0-9a-f]+\n$/);
      const bad = { ...q, msg: tampered(q.msg, -60, `${tag}.msg.bad`) };
      expect(checkquote(flags(bad)).code).toBe(1);
      expect((await cli(flags(bad))).code).toBe(1);
    });
  }
});
