import { describe, expect, it } from 'vitest';
import { InMemoryImaCheckpointStore } from './ima-checkpoint-store.js';

describe('InMemoryImaCheckpointStore', () => {
  it('keeps at most maxNodes, evicting the least recently used', async () => {
    const s = new InMemoryImaCheckpointStore({ maxNodes: 2 });
    const rec = { policyKey: 'p', resetCount: 0, checkpoint: { bank: 'sha256' as const, nextIndex: 1, pcrValue: new Uint8Array(32) }, prefixChars: 1, prefixSha256: '' };
    await s.set('a', rec);
    await s.set('b', rec);
    await s.get('a');
    await s.set('c', rec);
    expect(s.size).toBe(2);
    expect(await s.get('b')).toBeUndefined();
    expect(await s.get('a')).toBeDefined();
    expect(() => new InMemoryImaCheckpointStore({ maxNodes: 0 })).toThrow(TypeError);
  });
});
