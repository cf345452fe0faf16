import { mkdtemp, readdir, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadOrCreateSigningKey } from './signing-key.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'keyhold-signing-key-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('loadOrCreateSigningKey', () => {
  it('creates one key (0600) that every concurrent caller gets, and keeps it across calls', async () => {
    const file = join(dir, 'token-signing-key.pem');
    const keys = await Promise.all(Array.from({ length: 8 }, () => loadOrCreateSigningKey(undefined, file)));
    const jwks = keys.map((k) => JSON.stringify(k.export({ format: 'jwk' })));
    expect(new Set(jwks).size).toBe(1);
    expect((await stat(file)).mode & 0o777).toBe(0o600);
    expect(JSON.stringify((await loadOrCreateSigningKey(undefined, file)).export({ format: 'jwk' }))).toBe(jwks[0]);
    expect((await readdir(dir)).filter((f) => f.includes('kh-tmp'))).toEqual([]);
  });
});
