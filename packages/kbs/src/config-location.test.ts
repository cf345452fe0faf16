import { describe, expect, it } from 'vitest';
import { formatConfigIssue, formatTomlSyntaxError, tomlLineOf } from './config-location.js';

const TOML = `# KBS config
listen = "127.0.0.1:8080"

[storage]
backend = "redis"
url = "redis://x"

[tpm]
trusted_ak_list = "yes"
"ek_ca_dir" = "/etc/ca"

[admin]
identities = [
  { name = "alice", public_key_file = "a.pem", role = "owner-a" },
]
[admin.roles.owner-a]
rules = []
`;

describe('tomlLineOf', () => {
  it('finds keys under their table, quoted keys, tables, and the enclosing key of inline values', () => {
    expect(tomlLineOf(TOML, ['listen'])).toBe(2);
    expect(tomlLineOf(TOML, ['storage', 'url'])).toBe(6);
    expect(tomlLineOf(TOML, ['storage'])).toBe(4);
    expect(tomlLineOf(TOML, ['tpm', 'trusted_ak_list'])).toBe(9);
    expect(tomlLineOf(TOML, ['tpm', 'ek_ca_dir'])).toBe(10);
    expect(tomlLineOf(TOML, ['admin', 'identities', 0, 'role'])).toBe(13);
    expect(tomlLineOf(TOML, ['admin', 'roles', 'owner-a', 'rules'])).toBe(17);
    // An unknown key under a known table: the table's line.
    expect(tomlLineOf(TOML, ['storage', 'nope'])).toBe(4);
    expect(tomlLineOf(TOML, ['nowhere'])).toBeUndefined();
  });
});

describe('formatConfigIssue', () => {
  it('names the file, the line and the key path', () => {
    expect(formatConfigIssue('kbs.toml', TOML, { path: ['tpm', 'trusted_ak_list'], message: 'expected boolean' }, 'toml')).toBe('kbs.toml:9: tpm.trusted_ak_list: expected boolean');
    expect(formatConfigIssue('kbs.toml', TOML, { path: ['admin', 'identities', 0, 'role'], message: 'bad' }, 'toml')).toBe('kbs.toml:13: admin.identities[0].role: bad');
    expect(formatConfigIssue('kbs.toml', TOML, { path: ['storage'], code: 'unrecognized_keys', keys: ['bogus', 'other'], message: 'Unrecognized keys' }, 'toml')).toBe(
      'kbs.toml:4: storage.bogus: unknown key (also: other)',
    );
    expect(formatConfigIssue('kbs.json', '{}', { path: ['listen'], message: 'bad' }, 'json')).toBe('kbs.json: listen: bad');
  });

  it('formats TOML syntax errors with line and column', () => {
    expect(formatTomlSyntaxError('kbs.toml', Object.assign(new Error('Invalid TOML document: unterminated string\n\n3: x = "'), { line: 3, column: 5 }))).toBe('kbs.toml:3:5: invalid TOML: unterminated string');
  });
});
