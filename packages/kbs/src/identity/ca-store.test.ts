// The EK CA store as the KBS uses it (the state port's `ekCa`), on real vendor certificates.
// Fixtures: ../shared/corpus/ek-certs/tpm_cert_store (Keylime's vendor EK CA store, 51 PEM files).
import { cp, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { existsSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { openEmbeddedState, openMemoryState, StateError } from '../state/index.js';
import { IdentityStoreError } from './errors.js';

const repoRoot = fileURLToPath(new URL('../../../../', import.meta.url));
const vendor = path.resolve(repoRoot, '../shared/corpus/ek-certs/tpm_cert_store');
const haveCorpus = existsSync(vendor);
if (!haveCorpus) console.warn(`skipping the vendor EK CA store tests: ${vendor} is absent`);
const sessionLimits = { maxSessions: 10, maxSessionBytes: 1 << 20 };

async function code(p: Promise<unknown>): Promise<string | undefined> {
  try {
    await p;
  } catch (e) {
    if (e instanceof IdentityStoreError || e instanceof StateError) return e.code;
    throw e;
  }
  return undefined;
}

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'keyhold-ca-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe.skipIf(!haveCorpus)('the EK CA store on the vendor store (skipped when ../shared/corpus is absent)', () => {
  it('loads all 51 files without error; byte-identical duplicates are kept once', async () => {
    const state = await openMemoryState({ sessionLimits, ekCaDir: vendor });
    try {
      const snap = await state.ekCa.snapshot();
      expect(new Set(snap.entries.map((e) => e.sha256)).size).toBe(45); // 51 files minus 6 duplicates (README.json)
      expect(snap.certificates.length).toBe(45);
      expect(snap.entries.find((e) => e.file === 'Alibaba_Cloud_vTPM_EK.pem')?.subject).toMatch(/Aliyun TPM EKMF CA/);
    } finally {
      await state.close();
    }
  });

  // SECURITY negative test: a damaged store must not silently shrink or grow the trusted set.
  it('fails closed when one file is damaged, and accepts a multi-certificate bundle', async () => {
    await cp(vendor, dir, { recursive: true });
    const bundle = readFileSync(path.join(vendor, 'STM_RSA_RT.pem'), 'utf8') + 'between\n' + readFileSync(path.join(vendor, 'GS_TPM_RT.pem'), 'utf8');
    await writeFile(path.join(dir, 'bundle.pem'), bundle);
    const state = await openMemoryState({ sessionLimits, ekCaDir: dir });
    expect((await state.ekCa.snapshot()).certificates.length).toBe(45);
    await state.close();
    await writeFile(path.join(dir, 'broken.pem'), '-----BEGIN CERTIFICATE-----\nMIIB\n');
    expect(await code(openMemoryState({ sessionLimits, ekCaDir: dir }))).toBe('STATE_CORRUPT');
  });

  it('writes uploaded certificates as <sha256>.pem files that load back after a restart; junk is refused', async () => {
    const ca = path.join(dir, 'ek-ca');
    const open = () => openEmbeddedState({ dataDir: path.join(dir, 'data'), ekCaDir: ca, sessionLimits, auditFile: null });
    let state = await open();
    const { added } = await state.ekCa.add(new Uint8Array(readFileSync(path.join(vendor, 'Alibaba_Cloud_vTPM_EK.pem'))));
    expect(added).toHaveLength(1);
    expect(await readdir(ca)).toEqual([`${added[0]?.sha256}.pem`]);
    expect(await code(state.ekCa.add(new Uint8Array(Buffer.from('junk'))))).toBe('CA_STORE_INVALID');
    await state.close();
    state = await open();
    expect((await state.ekCa.snapshot()).entries[0]?.subject).toBe(added[0]?.subject);
    await state.close();
  });
});

describe('EK CA store errors', () => {
  it('an oversized file fails the start (fail closed)', async () => {
    await writeFile(path.join(dir, 'big.pem'), Buffer.alloc(1024 * 1024 + 1, 0x41));
    expect(await code(openMemoryState({ sessionLimits, ekCaDir: dir }))).toBe('STATE_CORRUPT');
  });
});
