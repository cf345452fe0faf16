import { describe, expect, it } from 'vitest';
import { UsageError } from './errors.js';
import { parseKbsUrl } from './kbs-url.js';

describe('parseKbsUrl', () => {
  it('keeps http(s) URLs, without a trailing slash', () => {
    expect(parseKbsUrl('http://127.0.0.1:8080/')).toBe('http://127.0.0.1:8080');
    expect(parseKbsUrl(' https://kbs.example:8443 ')).toBe('https://kbs.example:8443');
  });

  it('a URL without a scheme is a usage error that shows the fix', () => {
    for (const text of ['127.0.0.1:8080', 'localhost:8080', 'kbs.example']) {
      let err: unknown;
      try {
        parseKbsUrl(text, '--url');
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(UsageError);
      expect((err as UsageError).message).toBe(`--url "${text}" has no scheme`);
      expect((err as UsageError).hint).toBe(`write it as http://${text} (or https://...)`);
      expect((err as UsageError).exitCode).toBe(2);
    }
  });

  it('refuses other schemes, queries and junk', () => {
    expect(() => parseKbsUrl('ftp://x')).toThrow(/http:\/\/ or https:\/\//);
    expect(() => parseKbsUrl('http://x/?a=1')).toThrow(/query or fragment/);
    expect(() => parseKbsUrl('http://')).toThrow(UsageError);
  });
});
