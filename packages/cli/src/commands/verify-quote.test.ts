import { createPublicKey } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { run } from './verify-quote.js';

const repoRoot = fileURLToPath(new URL('../../../../', import.meta.url));
const kc = path.resolve(repoRoot, '../shared/corpus/quotes/keylime-checkquote');
const haveCorpus = existsSync(kc);
if (!haveCorpus) console.warn(`skipping verify-quote CLI tests: ${kc} is absent`);

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

describe.skipIf(!haveCorpus)('keyhold verify-quote', () => {
  let dir = '';
  const nonce = haveCorpus ? readFileSync(path.join(kc, 'rand.out')).toString('hex') : '';
  const args = (over: Record<string, string> = {}): string[] =>
    Object.entries({
      '--ak': path.join(kc, 'akpub.pem'),
      '--message': path.join(kc, 'quote.out'),
      '--signature': path.join(kc, 'quotesig.out'),
      '--pcrs': path.join(kc, 'quotepcr.out'),
      '--nonce': nonce,
      ...over,
    }).flat();
  const tampered = (file: string, offset: number, name: string): string => {
    const b = readFileSync(path.join(kc, file));
    b[offset] = (b[offset] as number) ^ 0x01;
    const out = path.join(dir, name);
    writeFileSync(out, b);
    return out;
  };

  beforeAll(() => {
    dir = mkdtempSync(path.join(tmpdir(), 'keyhold-cli-quote-'));
  });
  afterAll(() => {
    if (dir !== '') rmSync(dir, { recursive: true, force: true });
  });

  it('exits 0 for the valid corpus quote (PEM and DER AK) and prints the claims with --json', async () => {
    const ok = await cli(args());
    expect(ok).toMatchObject({ code: 0, stderr: '' });
    expect(ok.stdout).toBe('quote OK: rsassa-sha256, sha256 PCRs 15,16,22\n');

    const der = path.join(dir, 'ak.der');
    writeFileSync(der, createPublicKey(readFileSync(path.join(kc, 'akpub.pem'))).export({ format: 'der', type: 'spki' }));
    const json = await cli([...args({ '--ak': der }), '--json']);
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
    expect(claims.pcrs['22']).toBe('ff'.repeat(32));
  });

  it('exits 1 with one line on stderr for tampered inputs', async () => {
    const cases: [Record<string, string>, string][] = [
      [{ '--message': tampered('quote.out', 0x44, 'm') }, 'QUOTE_SIGNATURE_INVALID'],
      [{ '--message': tampered('quote.out', 5, 'm5') }, 'QUOTE_WRONG_TYPE'],
      [{ '--signature': tampered('quotesig.out', 100, 's') }, 'QUOTE_SIGNATURE_INVALID'],
      [{ '--pcrs': tampered('quotepcr.out', 0xd0, 'p') }, 'QUOTE_PCR_DIGEST_MISMATCH'],
      [{ '--nonce': `da${nonce.slice(2)}` }, 'QUOTE_EXTRA_DATA_MISMATCH'],
      [{ '--nonce': '' }, 'QUOTE_EXTRA_DATA_MISMATCH'],
      [{ '--ak': path.join(kc, 'ekpub.pem') }, 'QUOTE_SIGNATURE_INVALID'],
      [{ '--ak': path.join(kc, 'quote.out') }, 'QUOTE_INVALID_AK'],
    ];
    for (const [over, code] of cases) {
      const r = await cli(args(over));
      expect(r.code, code).toBe(1);
      expect(r.stdout).toBe('');
      expect(r.stderr).toMatch(new RegExp(`^keyhold verify-quote: invalid quote: .*\\(${code}\\)\\n$`));
    }
  });

  it('exits 1 for a PCR file whose bank id was altered (tpm2_checkquote 5.4 accepts this one)', async () => {
    // Byte 5 is the high byte of the little-endian hash id: 0x000b becomes 0x010b.
    const r = await cli(args({ '--pcrs': tampered('quotepcr.out', 5, 'bank') }));
    expect(r.code).toBe(1);
    expect(r.stderr.split('\n')).toHaveLength(2);
    const truncated = path.join(dir, 'short.pcrs');
    writeFileSync(truncated, readFileSync(path.join(kc, 'quotepcr.out')).subarray(0, 200));
    expect((await cli(args({ '--pcrs': truncated }))).stderr).toMatch(/\(TPM_TRUNCATED\)\n$/);
  });

  it('exits 2 for usage errors', async () => {
    for (const argv of [
      [],
      args().slice(0, 8),
      [...args(), '--bogus'],
      [...args(), 'extra'],
      args({ '--nonce': 'xyz' }),
      args({ '--nonce': 'abc' }),
      args({ '--nonce': 'aa'.repeat(65) }),
      args({ '--message': path.join(dir, 'does-not-exist') }),
      args({ '--signature': dir }),
    ]) {
      const r = await cli(argv);
      expect(r.code, argv.join(' ')).toBe(2);
      expect(r.stderr.split('\n')).toHaveLength(2);
    }
    expect((await cli(['--help'])).code).toBe(0);
  });

  it('works as `keyhold verify-quote` through the bin entry (real process)', () => {
    const bin = path.join(repoRoot, 'packages/cli/src/bin/keyhold.ts');
    const node = (argv: string[]): number | null =>
      spawnSync(process.execPath, ['--conditions=keyhold-source', '--import', 'tsx', bin, 'verify-quote', ...argv], { cwd: repoRoot, encoding: 'utf8' }).status;
    expect(node(args())).toBe(0);
    expect(node(args({ '--nonce': `da${nonce.slice(2)}` }))).toBe(1);
  });
});
