import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { run } from './verify-evidence.js';

// Corpus: Trustee's az-*-vtpm test evidence (../shared/corpus/README.md), report data "challenge".
const repoRoot = fileURLToPath(new URL('../../../../', import.meta.url));
const corpus = path.resolve(repoRoot, '../shared/corpus/cvm-vtpm');
const have = existsSync(corpus);
if (!have) console.warn(`skipping verify-evidence CLI tests: ${corpus} is absent`);

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

const CHALLENGE = '6368616c6c656e6765';
const NOW = ['--now', '2025-06-01T00:00:00Z'];

describe.skipIf(!have)('keyhold verify-evidence', () => {
  const snp = path.join(corpus, 'az-snp-vtpm/evidence-v1.json');
  const tdx = path.join(corpus, 'az-tdx-vtpm/evidence-v1.json');
  let dir = '';
  beforeAll(() => {
    dir = mkdtempSync(path.join(tmpdir(), 'keyhold-verify-evidence-'));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('accepts the corpus evidence of both kinds with the shipped roots', async () => {
    const s = await cli(['--tee', 'az-snp-vtpm', snp, '--report-data', CHALLENGE, ...NOW]);
    expect(s.code, s.stderr).toBe(0);
    expect(s.stdout).toMatch(/^valid az-snp-vtpm evidence \(version 1\): SEV-SNP Milan/);
    const t = await cli(['--tee', 'az-tdx-vtpm', tdx, '--report-data', CHALLENGE, ...NOW, '--json']);
    expect(t.code, t.stderr).toBe(0);
    const j = JSON.parse(t.stdout);
    expect(j.valid).toBe(true);
    expect(j.tcb.status).toBe('unknown');
    expect(j.claims.tpm.pcr00).toBe('782b20b10f55cc46e2142cc2145d548698073e5beb82752c8d7f9279f0d8a273');
  });

  it('accepts the evidence inside a tee-evidence object', async () => {
    const wrapped = path.join(dir, 'wrapped.json');
    writeFileSync(wrapped, JSON.stringify({ primary_evidence: JSON.parse(readFileSync(snp, 'utf8')), additional_evidence: '' }));
    expect((await cli(['--tee', 'az-snp-vtpm', wrapped, '--report-data', CHALLENGE, ...NOW])).code).toBe(0);
  });

  it('exits 1 naming the reason: wrong report data, no trusted roots, expired', async () => {
    const wrong = await cli(['--tee', 'az-snp-vtpm', snp, '--report-data', '00', ...NOW, '--json']);
    expect(wrong.code).toBe(1);
    expect(JSON.parse(wrong.stdout)).toMatchObject({ valid: false, code: 'QUOTE_EXTRA_DATA_MISMATCH' });
    expect(wrong.stderr).toMatch(/QUOTE_EXTRA_DATA_MISMATCH/);
    const tdxAsSnp = await cli(['--tee', 'az-snp-vtpm', tdx, '--report-data', CHALLENGE, ...NOW]);
    expect(tdxAsSnp.code).toBe(1);
    expect(tdxAsSnp.stderr).toMatch(/CVM_EVIDENCE_MALFORMED/);
    const expired = await cli(['--tee', 'az-tdx-vtpm', tdx, '--report-data', CHALLENGE, '--now', '2031-01-01T00:00:00Z']);
    expect(expired.code).toBe(1);
    expect(expired.stderr).toMatch(/TDX_CERT_EXPIRED/);
  });

  it('exits 2 on usage errors (missing tee or report data, bad hex, no roots at all)', async () => {
    expect((await cli([snp, '--report-data', CHALLENGE])).code).toBe(2);
    expect((await cli(['--tee', 'az-snp-vtpm', snp])).code).toBe(2);
    expect((await cli(['--tee', 'az-snp-vtpm', snp, '--report-data', 'xyz'])).code).toBe(2);
    expect((await cli(['--tee', 'az-snp-vtpm', snp, '--report-data', '00'.repeat(65)])).code).toBe(2);
    expect((await cli(['--tee', 'az-snp-vtpm', snp, '--report-data', CHALLENGE, '--no-builtin-roots'])).code).toBe(2);
    expect((await cli(['--tee', 'az-snp-vtpm', path.join(dir, 'absent.json'), '--report-data', CHALLENGE])).code).toBe(2);
    expect((await cli(['--bogus'])).code).toBe(2);
  });
});
