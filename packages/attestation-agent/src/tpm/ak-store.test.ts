// Agent state (stored AK) under concurrency: agents started at once on a fresh node (ocicrypt runs
// the key provider once per layer) must end up with ONE AK, the one every later run loads.
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadOrCreateAk } from './ak-store.js';
import { createSoftwareTpm } from './software-tpm.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'keyhold-ak-store-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('stored AK: concurrent first runs', () => {
  it('agents creating the AK at once all use the one that was stored (no torn or lost pair)', async () => {
    const stateDir = join(dir, 'race');
    const tpm = createSoftwareTpm();
    const runs = await Promise.all(Array.from({ length: 6 }, () => loadOrCreateAk(tpm, { stateDir, alg: 'ecc', ekAlg: 'ecc' })));
    const stored = await readFile(join(stateDir, 'ak-ecc.pub'));
    for (const r of runs) expect(Buffer.from(r.ak.publicArea).equals(stored)).toBe(true);
    expect(runs.filter((r) => r.created)).toHaveLength(1);
    const again = await loadOrCreateAk(tpm, { stateDir, alg: 'ecc', ekAlg: 'ecc' });
    expect(again.created).toBe(false);
    expect(Buffer.from(again.ak.publicArea).equals(stored)).toBe(true);
    for (const r of [...runs, again]) await r.release();
  });

  it('a private blob whose public area never arrived is reported, not silently replaced', async () => {
    const stateDir = join(dir, 'torn');
    const tpm = createSoftwareTpm();
    const opts = { stateDir, alg: 'ecc', ekAlg: 'ecc' } as const;
    const made = await loadOrCreateAk(tpm, opts);
    await made.release();
    const priv = await readFile(join(stateDir, 'ak-ecc.priv'));
    await rm(join(stateDir, 'ak-ecc.pub'));
    await expect(loadOrCreateAk(tpm, opts)).rejects.toMatchObject({ code: 'AK_STORE_FAILED', message: expect.stringMatching(/ak-ecc\.priv without \S*ak-ecc\.pub/) });
    // A public area without its private blob (an older agent interrupted between its two writes) is
    // no AK: a new pair is made and stored.
    await rm(join(stateDir, 'ak-ecc.priv'));
    await writeFile(join(stateDir, 'ak-ecc.pub'), Buffer.from(made.ak.publicArea));
    const fresh = await loadOrCreateAk(tpm, opts);
    expect(fresh.created).toBe(true);
    expect((await readFile(join(stateDir, 'ak-ecc.priv'))).equals(priv)).toBe(false);
    expect((await readFile(join(stateDir, 'ak-ecc.pub'))).equals(Buffer.from(fresh.ak.publicArea))).toBe(true);
    await fresh.release();
  });
});
