import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { EventLogError } from '../eventlog/errors.js';
import { appraiseIma } from './appraise.js';
import { createRuntimePolicyFromImaLog } from './create-policy.js';
import { parseImaLog } from './parse.js';
import { replayIma } from './replay.js';
import { convertLegacyAllowlist, parseRuntimePolicy } from './runtime-policy.js';
import { verifyImaAgainstQuote } from './verify.js';

// A generated measurement list: each line's template data is serialized here as the kernel does
// (ima_template_lib.c: d-ng = u32 len | "alg:\0" | digest, n-ng = u32 len | name\0, sig/buf = u32 len | bytes;
// legacy "ima" = 20-byte SHA-1 | name padded to 256 bytes) and its template hash is SHA-1 of that.
const le32 = (n: number): Buffer => {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(n);
  return b;
};
const sha = (alg: string, data: Buffer | string): Buffer => createHash(alg).update(data).digest();

interface Gen {
  line: string;
  data: Buffer;
  violation: boolean;
}

function ngLine(template: 'ima-ng' | 'ima-sig' | 'ima-buf', alg: string, digest: Buffer, name: string, tail?: Buffer): Gen {
  const algField = Buffer.from(`${alg}:\0`);
  const parts = [le32(algField.length + digest.length), algField, digest, le32(Buffer.byteLength(name) + 1), Buffer.from(name), Buffer.alloc(1)];
  if (template !== 'ima-ng') parts.push(le32(tail?.length ?? 0), tail ?? Buffer.alloc(0));
  const data = Buffer.concat(parts);
  const th = sha('sha1', data).toString('hex');
  const fields = template === 'ima-ng' ? `${alg}:${digest.toString('hex')} ${name}` : `${alg}:${digest.toString('hex')} ${name} ${(tail ?? Buffer.alloc(0)).toString('hex')}`;
  return { line: `10 ${th} ${template} ${fields}`, data, violation: false };
}

function legacyLine(digest: Buffer, name: string): Gen {
  const nameField = Buffer.alloc(256);
  nameField.write(name);
  const data = Buffer.concat([digest, nameField]);
  return { line: `10 ${sha('sha1', data).toString('hex')} ima ${digest.toString('hex')} ${name}`, data, violation: false };
}

function violationLine(name: string): Gen {
  const g = ngLine('ima-ng', 'sha256', Buffer.alloc(32), name);
  return { line: g.line.replace(/^10 [0-9a-f]{40}/, `10 ${'0'.repeat(40)}`), data: g.data, violation: true };
}

/** PCR10 as a TPM would hold it, computed straight from the generated template data. */
function expectedPcr(gens: Gen[], bank: 'sha1' | 'sha256', start?: Buffer): Buffer {
  const size = bank === 'sha1' ? 20 : 32;
  let pcr = start ?? Buffer.alloc(size);
  for (const g of gens) pcr = sha(bank, Buffer.concat([pcr, g.violation ? Buffer.alloc(size, 0xff) : sha(bank, g.data)]));
  return pcr;
}

const files = ['/usr/bin/bash', '/usr/lib/libc.so.6', '/usr/bin/ls', '/etc/ld.so.cache', '/tmp/scratch file'];
const content = (p: string): Buffer => sha('sha256', `content of ${p}`);

function generate(): Gen[] {
  const gens: Gen[] = [ngLine('ima-ng', 'sha256', sha('sha256', 'pcrs 0-7'), 'boot_aggregate')];
  for (const f of files.slice(0, 3)) gens.push(ngLine('ima-ng', 'sha256', content(f), f));
  gens.push(ngLine('ima-sig', 'sha256', content(files[3]!), files[3]!, Buffer.from('030204aabbccdd0004deadbeef', 'hex')));
  gens.push(ngLine('ima-sig', 'sha256', content(files[4]!), files[4]!));
  gens.push(ngLine('ima-buf', 'sha256', sha('sha256', Buffer.from('3082', 'hex')), '.ima', Buffer.from('3082', 'hex')));
  gens.push(legacyLine(sha('sha1', 'legacy'), '/usr/sbin/init'));
  return gens;
}
const text = (gens: Gen[]): string => `${gens.map((g) => g.line).join('\n')}\n`;

function codeOf(fn: () => unknown): string {
  try {
    fn();
    return 'accepted';
  } catch (err) {
    if (err instanceof EventLogError) return err.code;
    throw err;
  }
}

describe('parseImaLog', () => {
  it('parses ima, ima-ng, ima-sig (with and without signature) and ima-buf entries', () => {
    const entries = parseImaLog(text(generate()));
    expect(entries.map((e) => e.templateName)).toEqual(['ima-ng', 'ima-ng', 'ima-ng', 'ima-ng', 'ima-sig', 'ima-sig', 'ima-buf', 'ima']);
    expect(entries[4]?.signature?.byteLength).toBe(13);
    expect(entries[5]?.signature).toBeUndefined();
    expect(entries[5]?.path).toBe('/tmp/scratch file');
    expect(entries[6]?.buffer).toEqual(Buffer.from('3082', 'hex'));
    expect(entries[7]?.digestAlgorithm).toBe('sha1');
  });

  it('rejects a line whose fields do not match its template hash', () => {
    const gens = generate();
    gens[1]!.line = gens[1]!.line.replace('/usr/bin/bash', '/usr/bin/bas_');
    expect(gens[1]!.line).toContain('/usr/bin/bas_');
    expect(codeOf(() => parseImaLog(text(gens)))).toBe('IMA_TEMPLATE_HASH_MISMATCH');
  });

  it('rejects malformed lines with IMA_MALFORMED', () => {
    for (const bad of ['10 abc ima-ng', `10 ${'a'.repeat(40)} ima-ng sha256:zz /x`, `10 ${'a'.repeat(40)} ima-foo sha256:00 /x`, `x ${'a'.repeat(40)} ima-ng sha256:00 /x`, `10 ${'a'.repeat(41)} ima-ng sha256:00 /x`, `10 ${'a'.repeat(40)} ima-ng nope:00 /x`]) {
      expect(codeOf(() => parseImaLog(bad))).toBe('IMA_MALFORMED');
    }
    expect(codeOf(() => parseImaLog(text(generate()), { maxEntries: 3 }))).toBe('IMA_MALFORMED');
  });
});

describe('replayIma / verifyImaAgainstQuote', () => {
  it('replays the SHA-1 and SHA-256 banks of PCR10, violations extending all-ones', () => {
    const gens = [...generate(), violationLine('/var/log/written')];
    const entries = parseImaLog(text(gens));
    expect(entries.at(-1)?.violation).toBe(true);
    expect(Buffer.from(replayIma(entries, { bank: 'sha1' }))).toEqual(expectedPcr(gens, 'sha1'));
    expect(Buffer.from(replayIma(entries, { bank: 'sha256' }))).toEqual(expectedPcr(gens, 'sha256'));
  });

  it('accepts the log only when a prefix replays to the quoted PCR, and checkpoints after it', () => {
    const gens = generate();
    const entries = parseImaLog(text(gens));
    const v = verifyImaAgainstQuote(entries, { bank: 'sha256', value: expectedPcr(gens.slice(0, 5), 'sha256') });
    expect(v.entries).toHaveLength(5);
    expect(v.checkpoint.nextIndex).toBe(5);
    expect(codeOf(() => verifyImaAgainstQuote(entries, { bank: 'sha256', value: Buffer.alloc(32, 1) }))).toBe('IMA_REPLAY_MISMATCH');
    expect(codeOf(() => verifyImaAgainstQuote(entries, { bank: 'sha1', value: expectedPcr(gens, 'sha1') }))).toBe('EVENTLOG_BANK_NOT_ACCEPTED');
    expect(verifyImaAgainstQuote(entries, { bank: 'sha1', value: expectedPcr(gens, 'sha1') }, { allowSha1: true }).entries).toHaveLength(gens.length);
  });

  it('resumes incrementally from a checkpoint and rejects gaps', () => {
    const gens = generate();
    const all = parseImaLog(text(gens));
    const first = verifyImaAgainstQuote(all.slice(0, 4), { bank: 'sha256', value: expectedPcr(gens.slice(0, 4), 'sha256') });
    const tail = parseImaLog(text(gens.slice(4)), { firstIndex: 4 });
    const second = verifyImaAgainstQuote(tail, { bank: 'sha256', value: expectedPcr(gens, 'sha256') }, { checkpoint: first.checkpoint });
    expect(second.entries.map((e) => e.index)).toEqual([4, 5, 6, 7]);
    expect(second.checkpoint.nextIndex).toBe(8);
    const gap = parseImaLog(text(gens.slice(5)), { firstIndex: 5 });
    expect(codeOf(() => verifyImaAgainstQuote(gap, { bank: 'sha256', value: expectedPcr(gens, 'sha256') }, { checkpoint: first.checkpoint }))).toBe('IMA_MALFORMED');
  });

  it('rejects entries for another PCR', () => {
    const gens = generate();
    gens[1]!.line = gens[1]!.line.replace(/^10 /, '11 ');
    expect(codeOf(() => replayIma(parseImaLog(text(gens)), { bank: 'sha256' }))).toBe('IMA_MALFORMED');
  });
});

describe('appraiseIma with a Keylime runtime policy', () => {
  const gens = generate();
  const entries = parseImaLog(text(gens));
  const policyJson = {
    meta: { version: 1, generator: 1 },
    release: 0,
    digests: Object.fromEntries([...files.slice(0, 4).map((f) => [f, [content(f).toString('hex')]]), ['boot_aggregate', [sha('sha256', 'pcrs 0-7').toString('hex')]], ['/usr/sbin/init', [sha('sha1', 'legacy').toString('hex')]]]),
    excludes: ['/tmp/.*'],
    keyrings: { '.ima': [sha('sha256', Buffer.from('3082', 'hex')).toString('hex')] },
    ima: { ignored_keyrings: [] as string[], log_hash_alg: 'sha1', dm_policy: null },
    'ima-buf': {},
    'verification-keys': '',
  };

  it('accepts a log that the policy covers (excludes applied)', () => {
    const r = appraiseIma(entries, parseRuntimePolicy(policyJson));
    expect(r.failures).toEqual([]);
    expect(r.appraised).toBe(entries.length);
  });

  it('names the first file whose hash differs, or that is missing', () => {
    const p = structuredClone(policyJson);
    p.digests['/usr/bin/ls'] = ['00'.repeat(32)];
    delete p.digests['/usr/lib/libc.so.6'];
    const r = appraiseIma(entries, parseRuntimePolicy(p));
    expect(r.failures).toEqual([
      { index: 2, path: '/usr/lib/libc.so.6', reason: 'not-in-policy' },
      { index: 3, path: '/usr/bin/ls', reason: 'digest-mismatch' },
    ]);
  });

  it('appraises only entries after fromIndex (incremental)', () => {
    const p = structuredClone(policyJson);
    p.digests['/usr/bin/bash'] = ['00'.repeat(32)];
    expect(appraiseIma(entries, parseRuntimePolicy(p)).ok).toBe(false);
    const r = appraiseIma(entries, parseRuntimePolicy(p), { fromIndex: 2 });
    expect(r.ok).toBe(true);
    expect(r.appraised).toBe(entries.length - 2);
  });

  it('checks keyrings, honours ignored keyrings, and rejects violations unless allowed', () => {
    const p = structuredClone(policyJson);
    p.keyrings['.ima'] = ['11'.repeat(32)];
    expect(appraiseIma(entries, parseRuntimePolicy(p)).failures[0]?.reason).toBe('keyring-not-in-policy');
    p.ima.ignored_keyrings = ['.ima'];
    expect(appraiseIma(entries, parseRuntimePolicy(p)).ok).toBe(true);
    const withViolation = parseImaLog(text([...gens, violationLine('/var/log/x')]));
    expect(appraiseIma(withViolation, parseRuntimePolicy(policyJson)).failures[0]?.reason).toBe('violation');
    expect(appraiseIma(withViolation, parseRuntimePolicy(policyJson), { allowViolations: true }).ok).toBe(true);
  });

  it('rejects invalid policies', () => {
    expect(codeOf(() => parseRuntimePolicy({ ...policyJson, digests: { '/x': ['not hex'] } }))).toBe('IMA_POLICY_INVALID');
    expect(codeOf(() => parseRuntimePolicy({ ...policyJson, excludes: ['('] }))).toBe('IMA_POLICY_INVALID');
    expect(codeOf(() => parseRuntimePolicy({ digests: {} }))).toBe('IMA_POLICY_INVALID');
  });

  it('a policy created from the log accepts it; a legacy allowlist converts', () => {
    expect(appraiseIma(entries, parseRuntimePolicy(createRuntimePolicyFromImaLog(entries))).ok).toBe(true);
    const allow = `# comment\n${content('/usr/bin/bash').toString('hex')}  /usr/bin/bash\n${'ab'.repeat(32)}  /opt/with space\n`;
    const policy = convertLegacyAllowlist(allow, ['/tmp/.*']);
    expect(policy.digests).toEqual({ '/usr/bin/bash': [content('/usr/bin/bash').toString('hex')], '/opt/with space': ['ab'.repeat(32)] });
    expect(parseRuntimePolicy(policy).exclude?.test('/tmp/x')).toBe(true);
    expect(codeOf(() => convertLegacyAllowlist('nothex /x\n'))).toBe('IMA_POLICY_INVALID');
  });
});
