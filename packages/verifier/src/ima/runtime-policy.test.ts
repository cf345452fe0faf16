import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { EventLogError } from '../eventlog/errors.js';
import { appraiseIma } from './appraise.js';
import { parseImaLog } from './parse.js';
import { parseRuntimePolicy } from './runtime-policy.js';

const HEX = 'ab'.repeat(32);

describe('runtime policy digests with an algorithm prefix', () => {
  it('accepts sha256:<hex> (any case) as the bare digest', () => {
    const p = parseRuntimePolicy({ meta: { version: 1 }, digests: { '/usr/bin/a': [`sha256:${HEX.toUpperCase()}`, 'cd'.repeat(20)] } });
    expect([...(p.digests.get('/usr/bin/a') ?? [])]).toEqual([HEX, 'cd'.repeat(20)]);
    expect(p.policy.digests['/usr/bin/a']).toEqual([HEX, 'cd'.repeat(20)]);
  });

  it('refuses a prefix whose length does not fit (truncated or mislabelled digest)', () => {
    expect(() => parseRuntimePolicy({ meta: { version: 1 }, digests: { '/a': [`sha256:${'ab'.repeat(20)}`] } })).toThrow(EventLogError);
    expect(() => parseRuntimePolicy({ meta: { version: 1 }, digests: { '/a': [`sha1:${HEX}`] } })).toThrow(/does not match its algorithm prefix/);
    expect(() => parseRuntimePolicy({ meta: { version: 1 }, digests: { '/a': [`md5:${'ab'.repeat(16)}`] } })).toThrow(EventLogError);
    expect(() => parseRuntimePolicy({ meta: { version: 1 }, keyrings: {}, digests: { '/a': ['sha256:'] } })).toThrow(EventLogError);
  });

  it('a prefixed policy appraises an ima-ng entry like a bare one', () => {
    // ima-ng template data as the kernel serializes it (d-ng | n-ng); the template hash is its SHA-1.
    const le32 = (n: number): Buffer => Buffer.from([n & 0xff, (n >> 8) & 0xff, 0, 0]);
    const alg = Buffer.from('sha256:\0');
    const name = '/usr/bin/a';
    const data = Buffer.concat([le32(alg.length + 32), alg, Buffer.from(HEX, 'hex'), le32(name.length + 1), Buffer.from(`${name}\0`)]);
    const line = `10 ${createHash('sha1').update(data).digest('hex')} ima-ng sha256:${HEX} ${name}\n`;
    const entries = parseImaLog(line);
    const prefixed = parseRuntimePolicy({ meta: { version: 1 }, digests: { '/usr/bin/a': [`sha256:${HEX}`] } });
    const wrong = parseRuntimePolicy({ meta: { version: 1 }, digests: { '/usr/bin/a': [`sha256:${'cd'.repeat(32)}`] } });
    expect(appraiseIma(entries, prefixed).failures.filter((f) => f.path === '/usr/bin/a')).toEqual([]);
    expect(appraiseIma(entries, wrong).failures.some((f) => f.path === '/usr/bin/a' && f.reason === 'digest-mismatch')).toBe(true);
  });
});
