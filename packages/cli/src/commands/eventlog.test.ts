import { existsSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { run } from './eventlog.js';

// Fixtures: ../shared/corpus/eventlogs (google/go-tpm-tools internal/test/eventlogs); hostile variants are derived in the test.
const repoRoot = fileURLToPath(new URL('../../../../', import.meta.url));
const corpus = path.resolve(repoRoot, '../shared/corpus/eventlogs');
const haveCorpus = existsSync(corpus);
if (!haveCorpus) console.warn(`skipping keyhold eventlog tests: ${corpus} is absent`);

async function keyhold(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  const sink = (into: Buffer[]): Writable => new Writable({ write: (c: Buffer, _e, cb) => (into.push(Buffer.from(c)), cb()) });
  const code = await run(args, { stdout: sink(out), stderr: sink(err) });
  return { code, stdout: Buffer.concat(out).toString('utf8'), stderr: Buffer.concat(err).toString('utf8') };
}

describe.skipIf(!haveCorpus)('keyhold eventlog', () => {
  const logs = haveCorpus ? readdirSync(corpus).filter((f) => f.endsWith('.bin')) : [];
  for (const file of logs) {
    it(`${file}: --json PCRs equal .expected.json (TCG-spec replay)`, async () => {
      const expected = JSON.parse(readFileSync(path.join(corpus, file.replace(/\.bin$/, '.expected.json')), 'utf8'));
      const r = await keyhold([path.join(corpus, file), '--json']);
      expect(r.stderr).toBe('');
      expect(r.code).toBe(0);
      const body = JSON.parse(r.stdout);
      expect(body.pcrs).toEqual(expected.pcrs_tcg_spec ?? expected.pcrs);
      expect(body.events).toHaveLength(expected.event_count);
      expect(body.events[1]).toHaveProperty('typeName');
    });
  }

  it('prints every event and the PCRs of each bank as text', async () => {
    const r = await keyhold([path.join(corpus, 'rhel8-uefi.bin')]);
    expect(r.code).toBe(0);
    expect(r.stdout.match(/^- EventNum: /gm)).toHaveLength(83);
    expect(r.stdout).toMatch(/^pcrs:\n {2}sha1:\n/m);
    expect(r.stdout).toContain('EV_EFI_BOOT_SERVICES_APPLICATION');
    expect(r.stdout).toMatch(/UnicodeName: SecureBoot/);
  });

  it('fails a truncated, oversized-length or garbage log with one clear line on stderr', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'keyhold-eventlog-'));
    const bytes = readFileSync(path.join(corpus, 'rhel8-uefi.bin'));
    const variants: Record<string, Buffer> = {
      truncated: bytes.subarray(0, 5000),
      oversized: Buffer.concat([bytes.subarray(0, 28), Buffer.from([0xff, 0xff, 0xff, 0x7f]), bytes.subarray(32)]),
      garbage: Buffer.alloc(10, 0x41),
    };
    for (const [name, b] of Object.entries(variants)) {
      const f = path.join(dir, `${name}.bin`);
      writeFileSync(f, b);
      const r = await keyhold([f]);
      expect(r.code, name).toBe(1);
      expect(r.stdout, name).toBe('');
      expect(r.stderr.trimEnd().split('\n'), name).toHaveLength(1);
      expect(r.stderr, name).toMatch(/^keyhold eventlog: .*\((EVENTLOG_[A-Z_]+)\)\n$/);
    }
    const missing = await keyhold([path.join(dir, 'absent.bin')]);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/ENOENT/);
  });

  it('rejects bad usage with exit code 2', async () => {
    expect((await keyhold([])).code).toBe(2);
    expect((await keyhold(['--bogus', 'x'])).code).toBe(2);
  });
});
