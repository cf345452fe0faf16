import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startSwtpm, type RunningSwtpm } from '@keyhold/test-harness';
import { loadOrCreateAk } from '../tpm/ak-store.js';
import type { TpmDevice, TpmKey } from '../tpm/device.js';
import { createSoftwareTpm } from '../tpm/software-tpm.js';
import { openTpmDevice } from '../tpm/tss-device.js';
import { akQualifiedNameUnderEk, EkPublicCache } from './ek-public-cache.js';
import { IdentityContributor } from './identity-contributor.js';

const run = promisify(execFile);
let work: string;
beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'keyhold-ek-cache-'));
});
afterAll(() => rm(work, { recursive: true, force: true }));

/** An EK and an AK of a software TPM, the AK reporting the qualified name a TPM reports for a child of that EK. */
async function keys(): Promise<{ tpm: TpmDevice; ek: TpmKey; ak: TpmKey }> {
  const tpm = createSoftwareTpm();
  const ek = await tpm.createEk('rsa');
  const { key } = await tpm.createAk(ek, 'rsa');
  return { tpm, ek, ak: { ...key, qualifiedName: akQualifiedNameUnderEk(ek.name, key.name)! } };
}

describe('EkPublicCache', () => {
  it('gives back a remembered EK only for an AK whose qualified name chains to it', async () => {
    const dir = join(work, 'a');
    const cache = new EkPublicCache(dir);
    const { ek, ak } = await keys();
    expect(await cache.lookup('rsa', ak)).toBeUndefined();
    await cache.remember('rsa', ek, ak);
    expect((await stat(join(dir, 'ek-rsa.pub'))).mode & 0o777).toBe(0o600);
    expect(Buffer.from((await cache.lookup('rsa', ak))!).equals(Buffer.from(ek.publicArea))).toBe(true);

    // Another TPM behind the same state dir (or a cleared one with a new EK seed): another chain.
    const other = await keys();
    expect(await cache.lookup('rsa', other.ak)).toBeUndefined();
    // No qualified name from the TPM (a key that is not persistent): nothing to check against.
    expect(await cache.lookup('rsa', { ...ak, qualifiedName: undefined } as TpmKey)).toBeUndefined();
    // Another EK template than the one cached.
    expect(await cache.lookup('ecc', ak)).toBeUndefined();
  });

  it('ignores a cache file that was swapped, edited or is garbage, and never remembers a non-parent', async () => {
    const dir = join(work, 'b');
    const cache = new EkPublicCache(dir);
    const mine = await keys();
    const theirs = await keys();
    await cache.remember('rsa', theirs.ek, mine.ak);
    await expect(stat(join(dir, 'ek-rsa.pub'))).rejects.toThrow();
    await cache.remember('rsa', mine.ek, mine.ak);
    await writeFile(join(dir, 'ek-rsa.pub'), theirs.ek.publicArea);
    expect(await cache.lookup('rsa', mine.ak)).toBeUndefined();
    const edited = Buffer.from(mine.ek.publicArea);
    edited[edited.length - 1]! ^= 1;
    await writeFile(join(dir, 'ek-rsa.pub'), edited);
    expect(await cache.lookup('rsa', mine.ak)).toBeUndefined();
    await writeFile(join(dir, 'ek-rsa.pub'), 'garbage');
    expect(await cache.lookup('rsa', mine.ak)).toBeUndefined();
    await writeFile(join(dir, 'ek-rsa.pub'), Buffer.alloc(1 << 20));
    expect(await cache.lookup('rsa', mine.ak)).toBeUndefined();
  });

  it('does not fail the run when the state dir cannot be written', async () => {
    // A state "dir" below a regular file: mkdir fails with ENOTDIR (even for root).
    const file = join(work, 'not-a-dir');
    await writeFile(file, 'x');
    const { ek, ak } = await keys();
    const cache = new EkPublicCache(join(file, 'sub'));
    await expect(cache.remember('rsa', ek, ak)).resolves.toBeUndefined();
    expect(await cache.lookup('rsa', ak)).toBeUndefined();
  });
});

describe('EkPublicCache with swtpm (the TPM vouches through the persistent AK’s qualified name)', () => {
  let a: RunningSwtpm;
  let b: RunningSwtpm;
  beforeAll(async () => {
    [a, b] = await Promise.all([startSwtpm(), startSwtpm()]);
  }, 60_000);
  afterAll(() => Promise.all([a?.stop(), b?.stop()]));

  /** One agent run: open the TPM, load the persistent AK, name the EK; counts EK creations. */
  async function agentRun(tpmProc: RunningSwtpm, stateDir: string): Promise<{ ekPublic: string; ekCreated: number; realEk: string }> {
    const tpm = await openTpmDevice({ tcti: tpmProc.tcti });
    let ekCreated = 0;
    const counting: TpmDevice = Object.create(tpm, { createEk: { value: (alg: 'rsa') => (ekCreated++, tpm.createEk(alg)) } }) as TpmDevice;
    try {
      const ak = await loadOrCreateAk(tpm, { persistentHandle: 0x81010002, persist: true });
      const c = new IdentityContributor({ tpm: counting, ak: ak.ak, ekAlg: 'rsa', ekPublicCache: new EkPublicCache(stateDir) });
      const { ek_tpm2b_public } = await c.identity();
      await c.close();
      await ak.release();
      const real = await tpm.createEk('rsa');
      const realEk = Buffer.from(real.publicArea).toString('base64');
      await tpm.flushKey(real);
      return { ekPublic: ek_tpm2b_public, ekCreated, realEk };
    } finally {
      await tpm.close();
    }
  }

  it('creates the EK until it is cached, then names it from the cache; a TPM2_Clear keeps it valid, another TPM does not use it', async () => {
    const state = join(work, 'swtpm-state');
    // First run: the AK is created and persisted (that path reports no qualified name): EK made.
    const made = await agentRun(a, state);
    expect(made.ekCreated).toBe(1);
    expect(made.ekPublic).toBe(made.realEk);
    // Second run: the persistent AK's qualified name chains to the EK: made once more, then cached.
    expect((await agentRun(a, state)).ekCreated).toBe(1);
    const cached = await agentRun(a, state);
    expect(cached.ekCreated).toBe(0);
    expect(cached.ekPublic).toBe(made.realEk);

    // Another TPM behind the same state dir: its AK does not chain to the cached EK.
    await agentRun(b, state);
    const other = await agentRun(b, state);
    expect(other.ekCreated).toBe(1);
    expect(other.ekPublic).toBe(other.realEk);
    expect(other.ekPublic).not.toBe(made.realEk);

    // TPM2_Clear evicts the AK (a new one is made) but keeps the endorsement seed. The cache now holds
    // B's EK, which A's new AK does not chain to: A's real EK is named, made and cached again.
    await run('tpm2_clear', ['-c', 'p'], { env: { ...process.env, TPM2TOOLS_TCTI: a.tcti } });
    for (const r of [await agentRun(a, state), await agentRun(a, state)]) {
      expect(r.ekCreated).toBe(1);
      expect(r.ekPublic).toBe(made.realEk);
    }
    const again = await agentRun(a, state);
    expect(again.ekCreated).toBe(0);
    expect(again.ekPublic).toBe(made.realEk);
    expect(await readFile(join(state, 'ek-rsa.pub'))).toEqual(Buffer.from(made.realEk, 'base64'));
  }, 60_000);
});
