import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { ProtocolError } from './errors.js';
import { expectedInitDataPcr8, parseInitData, tpmInitDataDigest } from './init-data.js';

const body = 'algorithm = "sha384"\nversion = "0.1.0"\n\n[data]\n"policy.rego" = "package x"\nworkload_id = "spiffe://example.org/ns/a"\n';

describe('init-data', () => {
  it('hashes the exact body with the named algorithm and exposes the data table', () => {
    const p = parseInitData({ format: 'toml', body });
    expect(p.algorithm).toBe('sha384');
    expect(Buffer.from(p.digest).toString('hex')).toBe(createHash('sha384').update(body).digest('hex'));
    expect(p.data['workload_id']).toBe('spiffe://example.org/ns/a');
    expect(tpmInitDataDigest(p.digest).length).toBe(32);
  });
  it('computes PCR8 after one extend from zero', () => {
    const d = new Uint8Array(32).fill(7);
    const want = createHash('sha256').update(Buffer.concat([Buffer.alloc(32), Buffer.from(d)])).digest('hex');
    expect(Buffer.from(expectedInitDataPcr8(d)).toString('hex')).toBe(want);
  });
  it('refuses other formats, bad TOML, unknown algorithms and oversized bodies', () => {
    expect(() => parseInitData({ format: 'json', body })).toThrow(ProtocolError);
    expect(() => parseInitData({ format: 'toml', body: 'a = = 1' })).toThrow(ProtocolError);
    expect(() => parseInitData({ format: 'toml', body: 'algorithm = "md5"' })).toThrow(ProtocolError);
    expect(() => parseInitData({ format: 'toml', body: '#'.repeat(300_000) })).toThrow(ProtocolError);
  });
});
