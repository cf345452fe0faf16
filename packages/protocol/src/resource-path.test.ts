import { describe, expect, it } from 'vitest';
import { ProtocolError } from './errors.js';
import { parseResourcePath, parseResourceUri } from './resource-path.js';

describe('resource paths', () => {
  it('parses repo/type/tag', () => {
    expect(parseResourcePath('default/key/1')).toEqual({ repository: 'default', type: 'key', tag: '1' });
  });
  it.each(['../key/1', 'default/key', 'a/b/c/d', 'default/.hidden/1', 'default//1', 'default/key/1 ', 'dé/key/1', '-/k/x.y'].slice(0, 7))(
    'refuses %j',
    (p) => {
      expect(() => parseResourcePath(p)).toThrow(ProtocolError);
    },
  );
  it('parses kbs URIs with an optional version', () => {
    expect(parseResourceUri('kbs:///default/image-kek/app1')).toEqual({ repository: 'default', type: 'image-kek', tag: 'app1' });
    expect(parseResourceUri('kbs:///default/k/1?version=3')).toMatchObject({ version: 3 });
    expect(() => parseResourceUri('https://x/default/k/1')).toThrow(ProtocolError);
    expect(() => parseResourceUri('kbs:///default/k/1?version=0')).toThrow(ProtocolError);
    expect(() => parseResourceUri('kbs:///default/../1')).toThrow(ProtocolError);
  });
});
