import { describe, expect, it } from 'vitest';
import { exitCodeForAnswer, parseResourceTarget, resourceFromArgument, resourceTarget } from './wire.js';

describe('resource socket wire', () => {
  it('names a resource by /cdh/resource/REPO/TYPE/TAG[?version=N], both ways', () => {
    expect(parseResourceTarget('/cdh/resource/default/key/k1')).toEqual({ repository: 'default', type: 'key', tag: 'k1' });
    expect(parseResourceTarget('/cdh/resource/default/key/k1?version=3')).toEqual({ repository: 'default', type: 'key', tag: 'k1', version: 3 });
    for (const r of [{ repository: 'a', type: 'b', tag: 'c.d' }, { repository: 'a', type: 'b', tag: 'c', version: 12 }]) {
      expect(parseResourceTarget(resourceTarget(r))).toEqual(r);
    }
  });

  it('refuses a target that is not exactly one resource', () => {
    // SECURITY: dot segments, percent-encoding, extra or empty segments and other routes never reach the KBS as another path.
    for (const t of [
      '/cdh/resource/default/../key/k1',
      '/cdh/resource/default/key/..',
      '/cdh/resource/default/%2e%2e/k1',
      '/cdh/resource/default/key/k1/extra',
      '/cdh/resource//key/k1',
      '/cdh/resource/default/key',
      '/cdh/resource/default/key/k1?version=0',
      '/cdh/resource/default/key/k1?version=1&x=2',
      '/cdh/resource/default/key/k1?',
      '/kbs/v0/resource/default/key/k1',
      '/cdh/resource/default/key/.hidden',
    ]) {
      expect(parseResourceTarget(t), t).toBeUndefined();
    }
  });

  it('takes a resource as the CLIs write it', () => {
    const want = { repository: 'default', type: 'key', tag: 'k1' };
    expect(resourceFromArgument('kbs:///default/key/k1')).toEqual(want);
    expect(resourceFromArgument('default/key/k1')).toEqual(want);
    expect(resourceFromArgument('/default/key/k1')).toEqual(want);
    expect(resourceFromArgument('kbs:///default/key/k1?version=2')).toEqual({ ...want, version: 2 });
    expect(() => resourceFromArgument('default/key')).toThrow(/three segments/);
  });

  it('maps answers to the CLI exit codes (4 not found, 3 refused, 2 bad request, 1 otherwise)', () => {
    expect(exitCodeForAnswer(404, 'RESOURCE_NOT_FOUND')).toBe(4);
    expect(exitCodeForAnswer(404, 'ROUTE_NOT_FOUND')).toBe(1);
    expect(exitCodeForAnswer(403, 'POLICY_DENY')).toBe(3);
    expect(exitCodeForAnswer(401, 'UNAUTHORIZED')).toBe(3);
    expect(exitCodeForAnswer(400, 'RESOURCE_PATH_INVALID')).toBe(2);
    expect(exitCodeForAnswer(503, 'AGENT_BUSY')).toBe(1);
  });
});
