import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { appraiseIma, appraiseMeasuredBoot, parseEventLog, parseImaLog, parseMeasuredBootReferenceState, parseRuntimePolicy, replayEventLog, verifyEventLogAgainstQuote } from '@keyhold/verifier';
import { describe, expect, it } from 'vitest';
import type { CommandIo } from '../command.js';
import { runKeyhold } from '../program.js';

/** `keyhold policy create ...` in process, with an empty environment. */
const run = (argv: string[], io: CommandIo): Promise<number> => runKeyhold(['policy', 'create', ...argv], io, {});

// Fixtures: ../shared/corpus/eventlogs (google/go-tpm-tools internal/test/eventlogs); IMA logs are generated here.
const repoRoot = fileURLToPath(new URL('../../../../', import.meta.url));
const corpus = path.resolve(repoRoot, '../shared/corpus/eventlogs');
const haveCorpus = existsSync(corpus);
if (!haveCorpus) console.warn(`skipping keyhold policy create measured-boot tests: ${corpus} is absent`);

async function keyhold(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  const sink = (into: Buffer[]): Writable => new Writable({ write: (c: Buffer, _e, cb) => (into.push(Buffer.from(c)), cb()) });
  const code = await run(args, { stdout: sink(out), stderr: sink(err) });
  return { code, stdout: Buffer.concat(out).toString('utf8'), stderr: Buffer.concat(err).toString('utf8') };
}

const sha = (alg: string, d: Buffer | string): Buffer => createHash(alg).update(d).digest();
function imaNgLine(digest: Buffer, name: string): string {
  const alg = Buffer.from('sha256:\0');
  const le = (n: number): Buffer => Buffer.from(Uint32Array.of(n).buffer);
  const data = Buffer.concat([le(alg.length + 32), alg, digest, le(Buffer.byteLength(name) + 1), Buffer.from(name), Buffer.alloc(1)]);
  return `10 ${sha('sha1', data).toString('hex')} ima-ng sha256:${digest.toString('hex')} ${name}`;
}

describe.skipIf(!haveCorpus)('keyhold policy create measured-boot', () => {
  it('prints a reference state that accepts the log it came from', async () => {
    const file = path.join(corpus, 'ubuntu-2404-amd-sevsnp.bin');
    const r = await keyhold(['measured-boot', '--eventlog', file, '--pin-pcrs', '0,2']);
    expect(r.code).toBe(0);
    const state = parseMeasuredBootReferenceState(JSON.parse(r.stdout));
    expect(state.secureBoot).toBeTypeOf('boolean');
    expect(state.pcrs?.sha256?.['0']).toHaveLength(1);
    const log = parseEventLog(readFileSync(file));
    const rep = replayEventLog(log, { banks: ['sha256'] }).get('sha256');
    if (rep?.ok !== true) throw new Error('replay failed');
    const verified = verifyEventLogAgainstQuote(log, { bank: 'sha256', values: rep.pcrs });
    expect(appraiseMeasuredBoot(verified, state).ok).toBe(true);
  });

  it('fails a malformed log with a typed error line and bad usage with 2', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'keyhold-policy-'));
    const f = path.join(dir, 'bad.bin');
    writeFileSync(f, readFileSync(path.join(corpus, 'rhel8-uefi.bin')).subarray(0, 3000));
    const r = await keyhold(['measured-boot', '--eventlog', f]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/\(EVENTLOG_[A-Z_]+\)\n$/);
    expect((await keyhold(['measured-boot'])).code).toBe(2);
    expect((await keyhold(['measured-boot', '--eventlog', f, '--pin-pcrs', '99'])).code).toBe(2);
  });
});

describe('keyhold policy create runtime', () => {
  it('--ima-log: a policy that accepts the log', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'keyhold-ima-'));
    const text = `${[imaNgLine(sha('sha256', 'a'), '/usr/bin/a'), imaNgLine(sha('sha256', 'b'), '/usr/bin/b')].join('\n')}\n`;
    writeFileSync(path.join(dir, 'ima.txt'), text);
    const r = await keyhold(['runtime', '--ima-log', path.join(dir, 'ima.txt'), '--exclude', '/tmp/.*']);
    expect(r.code).toBe(0);
    const policy = parseRuntimePolicy(JSON.parse(r.stdout));
    expect(policy.policy.excludes).toEqual(['/tmp/.*']);
    expect(appraiseIma(parseImaLog(text), policy).ok).toBe(true);
  });

  it('--rootfs: hashes every regular file, paths rooted at /', async () => {
    const root = mkdtempSync(path.join(tmpdir(), 'keyhold-rootfs-'));
    mkdirSync(path.join(root, 'usr/bin'), { recursive: true });
    writeFileSync(path.join(root, 'usr/bin/tool'), 'tool bytes');
    writeFileSync(path.join(root, 'top'), Buffer.alloc(3 * 1024 * 1024, 7));
    const r = await keyhold(['runtime', '--rootfs', root]);
    expect(r.code).toBe(0);
    const policy = JSON.parse(r.stdout);
    expect(policy.digests).toEqual({
      '/usr/bin/tool': [sha('sha256', 'tool bytes').toString('hex')],
      '/top': [sha('sha256', Buffer.alloc(3 * 1024 * 1024, 7)).toString('hex')],
    });
    expect(policy.meta.version).toBe(1);
  });

  it('--allowlist converts a legacy allowlist; bad input fails cleanly', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'keyhold-allow-'));
    writeFileSync(path.join(dir, 'allow.txt'), `${'ab'.repeat(32)}  /usr/bin/x\n`);
    const ok = await keyhold(['runtime', '--allowlist', path.join(dir, 'allow.txt')]);
    expect(JSON.parse(ok.stdout).digests).toEqual({ '/usr/bin/x': ['ab'.repeat(32)] });
    writeFileSync(path.join(dir, 'bad.txt'), 'zz /usr/bin/x\n');
    const bad = await keyhold(['runtime', '--allowlist', path.join(dir, 'bad.txt')]);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/IMA_POLICY_INVALID/);
    expect((await keyhold(['runtime'])).code).toBe(2);
    expect((await keyhold(['runtime', '--ima-log', path.join(dir, 'absent'), '--rootfs', dir])).code).toBe(1);
    expect((await keyhold(['runtime', '--rootfs', path.join(dir, 'absent')])).code).toBe(1);
  });

  it("takes Keylime's flags: -m FILE, -a FILE, -e FILE, --algo, -o FILE, and merges the sources", async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'keyhold-keylime-'));
    const text = `${imaNgLine(sha('sha256', 'a'), '/usr/bin/a')}\n`;
    writeFileSync(path.join(dir, 'ima.txt'), text);
    writeFileSync(path.join(dir, 'allow.txt'), `${'cd'.repeat(32)}  /usr/bin/b\n`);
    writeFileSync(path.join(dir, 'excludes.txt'), '/tmp/.*\n\n/var/log/.*\n');
    const root = path.join(dir, 'root');
    mkdirSync(path.join(root, 'opt'), { recursive: true });
    writeFileSync(path.join(root, 'opt/tool'), 'tool');
    const out = path.join(dir, 'policy.json');
    const r = await keyhold(['runtime', '-m', path.join(dir, 'ima.txt'), '-a', path.join(dir, 'allow.txt'), '-e', path.join(dir, 'excludes.txt'), '--rootfs', root, '--algo', 'sha384', '-o', out]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toBe('');
    const policy = JSON.parse(readFileSync(out, 'utf8'));
    expect(policy.excludes).toEqual(['/tmp/.*', '/var/log/.*']);
    expect(policy.digests).toEqual({
      '/usr/bin/a': [sha('sha256', 'a').toString('hex')],
      '/usr/bin/b': ['cd'.repeat(32)],
      '/opt/tool': [sha('sha384', 'tool').toString('hex')],
    });
    expect(appraiseIma(parseImaLog(text), parseRuntimePolicy(policy)).ok).toBe(true);
    expect((await keyhold(['runtime', '--rootfs', root, '--algo', 'md5'])).code).toBe(2);
  });

  it('accepts sha256:-prefixed digests in policies it reads back', async () => {
    const policy = parseRuntimePolicy({ meta: { version: 1 }, digests: { '/usr/bin/a': [`sha256:${sha('sha256', 'a').toString('hex')}`] } });
    expect(appraiseIma(parseImaLog(`${imaNgLine(sha('sha256', 'a'), '/usr/bin/a')}\n`), policy).ok).toBe(true);
  });
});

describe('keyhold policy import keylime-mb', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'keyhold-keylime-mb-'));
  const run2 = async (file: string) => {
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    const sink = (into: Buffer[]): Writable => new Writable({ write: (c: Buffer, _e, cb) => (into.push(Buffer.from(c)), cb()) });
    const code = await runKeyhold(['policy', 'import', 'keylime-mb', file], { stdout: sink(out), stderr: sink(err) }, {});
    return { code, stdout: Buffer.concat(out).toString(), stderr: Buffer.concat(err).toString() };
  };

  it('refuses a Keylime refstate, saying what to run instead (no partial conversion)', async () => {
    const f = path.join(dir, 'refstate.json');
    writeFileSync(f, JSON.stringify({ has_secureboot: true, scrtm_and_bios: [{ scrtm: { sha256: '0x00' } }], pk: [], kek: [], db: [], dbx: [], mokdig: [], mokxdig: [], kernels: [] }));
    const r = await run2(f);
    expect(r.code).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr).toMatch(/is a Keylime measured-boot reference state; Keyhold does not convert it\n {2}hint: .*keyhold policy create measured-boot --eventlog \/sys\/kernel\/security\/tpm0\/binary_bios_measurements/);
  });

  it('tells a Keyhold reference state and other JSON apart', async () => {
    const own = path.join(dir, 'own.json');
    writeFileSync(own, JSON.stringify({ version: 1, secureBoot: true }));
    expect((await run2(own)).stderr).toMatch(/already a Keyhold measured-boot reference state/);
    const other = path.join(dir, 'other.json');
    writeFileSync(other, '{"x":1}');
    expect((await run2(other)).stderr).toMatch(/is not a Keylime measured-boot reference state/);
  });
});
