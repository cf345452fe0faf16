// Fixtures: ../shared/corpus/ek-certs/tpm_cert_store (Keylime's vendor EK CA store, 51 PEM files).
import { cp, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { existsSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { addCaCertificates, loadCaStore } from './ca-store.js';
import { IdentityStoreError } from './errors.js';

const repoRoot = fileURLToPath(new URL('../../../../', import.meta.url));
const vendor = path.resolve(repoRoot, '../shared/corpus/ek-certs/tpm_cert_store');
const haveCorpus = existsSync(vendor);

async function code(p: Promise<unknown>): Promise<string | undefined> {
  try {
    await p;
  } catch (e) {
    if (e instanceof IdentityStoreError) return e.code;
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

describe.skipIf(!haveCorpus)('loadCaStore on the vendor store (skipped when ../shared/corpus is absent)', () => {
  it('loads all 51 files without error; byte-identical duplicates are kept once', async () => {
    const store = await loadCaStore(vendor);
    expect(new Set(store.entries.map((e) => e.file)).size).toBe(45); // 51 files minus 6 duplicates (README.json)
    expect(store.certificates.length).toBe(45);
    expect(store.entries.find((e) => e.file === 'Alibaba_Cloud_vTPM_EK.pem')?.subject).toMatch(/Aliyun TPM EKMF CA/);
  });

  it('fails closed when one file is damaged, and accepts a multi-certificate bundle', async () => {
    await cp(vendor, dir, { recursive: true });
    const bundle = readFileSync(path.join(vendor, 'STM_RSA_RT.pem'), 'utf8') + 'between\n' + readFileSync(path.join(vendor, 'GS_TPM_RT.pem'), 'utf8');
    await writeFile(path.join(dir, 'bundle.pem'), bundle);
    expect((await loadCaStore(dir)).certificates.length).toBe(45);
    await writeFile(path.join(dir, 'broken.pem'), '-----BEGIN CERTIFICATE-----\nMIIB\n');
    expect(await code(loadCaStore(dir))).toBe('CA_STORE_INVALID');
  });

  it('adds uploaded certificates as <sha256>.pem files that load back', async () => {
    const added = await addCaCertificates(dir, new Uint8Array(readFileSync(path.join(vendor, 'Alibaba_Cloud_vTPM_EK.pem'))));
    expect(added).toHaveLength(1);
    expect(await readdir(dir)).toEqual([`${added[0]?.sha256}.pem`]);
    expect((await loadCaStore(dir)).entries[0]?.subject).toBe(added[0]?.subject);
    expect(await code(addCaCertificates(dir, new Uint8Array(Buffer.from('junk'))))).toBe('CA_STORE_INVALID');
  });
});

describe('loadCaStore errors', () => {
  it('a missing directory is CA_STORE_UNAVAILABLE; an oversized file is CA_STORE_INVALID', async () => {
    expect(await code(loadCaStore(path.join(dir, 'missing')))).toBe('CA_STORE_UNAVAILABLE');
    await writeFile(path.join(dir, 'big.pem'), Buffer.alloc(1024 * 1024 + 1, 0x41));
    expect(await code(loadCaStore(dir))).toBe('CA_STORE_INVALID');
  });
});
