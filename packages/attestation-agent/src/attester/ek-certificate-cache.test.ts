import { mkdir, mkdtemp, readFile, rm, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startSwtpm, type RunningSwtpm } from '@keyhold/test-harness';
import { createTestCa, type TestCa } from '../node-cert/test-ca.test-support.js';
import { loadOrCreateAk } from '../tpm/ak-store.js';
import { EK_CERT_NV_INDEX, type TpmDevice } from '../tpm/device.js';
import { tpm2bPublicToSpkiDer } from '../tpm/public-area.js';
import { createSoftwareTpm } from '../tpm/software-tpm.js';
import { openTpmDevice } from '../tpm/tss-device.js';
import { EK_CERT_CACHE_MAX_AGE_MS, EkCertificateCache } from './ek-certificate-cache.js';
import { EkPublicCache } from './ek-public-cache.js';
import { IdentityContributor } from './identity-contributor.js';

let work: string;
let ca: TestCa;
beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'keyhold-ek-cert-cache-'));
  ca = await createTestCa('CN=test EK CA');
});
afterAll(() => rm(work, { recursive: true, force: true }));

let dirs = 0;
const stateDir = () => join(work, `state-${dirs++}`);
const DAYS = 24 * 3600_000;
/** An RSA EK public area (software TPM) and a certificate for it, valid for three days from now. */
async function ekWithCert(opts: { notBefore?: Date; notAfter?: Date } = {}): Promise<{ ekPublic: Uint8Array; der: Uint8Array }> {
  const ek = await createSoftwareTpm().createEk('rsa');
  const cert = await ca.issue(tpm2bPublicToSpkiDer(ek.publicArea), { notBefore: opts.notBefore ?? new Date(Date.now() - 60_000), notAfter: opts.notAfter ?? new Date(Date.now() + 3 * DAYS) });
  return { ekPublic: ek.publicArea, der: new Uint8Array(cert.rawData) };
}

describe('EkCertificateCache', () => {
  it('gives back a remembered certificate of the EK, kept 0600 in the state dir', async () => {
    const dir = stateDir();
    const cache = new EkCertificateCache(dir);
    const { ekPublic, der } = await ekWithCert();
    expect(await cache.lookup('rsa', ekPublic)).toBeUndefined();
    await cache.remember('rsa', ekPublic, der);
    expect(Buffer.from((await cache.lookup('rsa', ekPublic))!)).toEqual(Buffer.from(der));
    expect(await readFile(join(dir, 'ek-rsa.crt'))).toEqual(Buffer.from(der));
    expect((await import('node:fs')).statSync(join(dir, 'ek-rsa.crt')).mode & 0o777).toBe(0o600);
    // Another EK (another TPM behind the same state dir): not its certificate.
    const other = await ekWithCert();
    expect(await cache.lookup('rsa', other.ekPublic)).toBeUndefined();
  });

  it('never keeps or names a certificate of another key, an expired or not yet valid one, garbage or an oversized file', async () => {
    const dir = stateDir();
    await mkdir(dir, { recursive: true });
    const cache = new EkCertificateCache(dir);
    const { ekPublic, der } = await ekWithCert();
    const other = await ekWithCert();
    await cache.remember('rsa', ekPublic, other.der);
    expect(await cache.lookup('rsa', ekPublic)).toBeUndefined();
    // A swapped file: the certificate of another key.
    await writeFile(join(dir, 'ek-rsa.crt'), other.der);
    expect(await cache.lookup('rsa', ekPublic)).toBeUndefined();
    for (const bad of [Buffer.from('not a certificate'), Buffer.from(der).subarray(0, 200), Buffer.concat([Buffer.from(der), Buffer.alloc(17 * 1024)])]) {
      await writeFile(join(dir, 'ek-rsa.crt'), bad);
      expect(await cache.lookup('rsa', ekPublic)).toBeUndefined();
    }
    const expired = await ekWithCert({ notBefore: new Date(Date.now() - 7200_000), notAfter: new Date(Date.now() - 3600_000) });
    await writeFile(join(dir, 'ek-rsa.crt'), expired.der);
    expect(await cache.lookup('rsa', expired.ekPublic)).toBeUndefined();
    const early = await ekWithCert({ notBefore: new Date(Date.now() + 3600_000), notAfter: new Date(Date.now() + 2 * 3600_000) });
    await writeFile(join(dir, 'ek-rsa.crt'), early.der);
    expect(await cache.lookup('rsa', early.ekPublic)).toBeUndefined();
    await cache.remember('rsa', early.ekPublic, early.der);
    expect(await readFile(join(dir, 'ek-rsa.crt'))).toEqual(Buffer.from(early.der));
  });

  it('reads NV afresh once the copy is a day old (a renewed certificate), and not when the state dir cannot be written', async () => {
    const dir = stateDir();
    const { ekPublic, der } = await ekWithCert();
    await new EkCertificateCache(dir).remember('rsa', ekPublic, der);
    const later = (ms: number) => new EkCertificateCache(dir, { now: () => Date.now() + ms });
    expect(await later(EK_CERT_CACHE_MAX_AGE_MS - 60_000).lookup('rsa', ekPublic)).toBeDefined();
    expect(await later(EK_CERT_CACHE_MAX_AGE_MS + 60_000).lookup('rsa', ekPublic)).toBeUndefined();
    // Dated in the future (a clock set back): not used either.
    const future = new Date(Date.now() + 3600_000);
    await utimes(join(dir, 'ek-rsa.crt'), future, future);
    expect(await new EkCertificateCache(dir).lookup('rsa', ekPublic)).toBeUndefined();
    const blocked = join(work, 'a-file');
    await writeFile(blocked, '');
    await expect(new EkCertificateCache(join(blocked, 'state')).remember('rsa', ekPublic, der)).resolves.toBeUndefined();
  });
});

describe('IdentityContributor with an EkCertificateCache', () => {
  /** A node with a software TPM holding `der` as its EK certificate; counts NV reads. */
  async function node(dir: string, nvCert: () => Uint8Array, ekKeys: Parameters<typeof createSoftwareTpm>[0]) {
    const nv = new Map<number, Uint8Array>();
    const tpm = createSoftwareTpm({ ...ekKeys, nv });
    let nvReads = 0;
    const counting: TpmDevice = Object.create(tpm, { readNv: { value: (i: number) => (nvReads++, nv.set(EK_CERT_NV_INDEX.rsa, nvCert()), tpm.readNv(i)) } }) as TpmDevice;
    const { ak } = await loadOrCreateAk(tpm, { persistentHandle: 0x81010002, persist: true });
    const run = async (cache: EkCertificateCache) => {
      const c = new IdentityContributor({ tpm: counting, ak, ekAlg: 'rsa', ekPublicCache: new EkPublicCache(dir), ekCertificateCache: cache });
      const id = await c.identity();
      await c.close();
      return id;
    };
    return { run, reads: () => nvReads };
  }

  it('reads the certificate from NV once, then names the kept copy until it is a day old', async () => {
    const dir = stateDir();
    const { generateKeyPairSync } = await import('node:crypto');
    const ekKeys = { ekKeys: { rsa: generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey } };
    const ek = await createSoftwareTpm(ekKeys).createEk('rsa');
    const first = new Uint8Array((await ca.issue(tpm2bPublicToSpkiDer(ek.publicArea), { serial: '01', notBefore: new Date(Date.now() - 60_000), notAfter: new Date(Date.now() + 3 * DAYS) })).rawData);
    const renewed = new Uint8Array((await ca.issue(tpm2bPublicToSpkiDer(ek.publicArea), { serial: '02', notBefore: new Date(Date.now() - 60_000), notAfter: new Date(Date.now() + 3 * DAYS) })).rawData);
    let inNv = first;
    const n = await node(dir, () => inNv, ekKeys);
    const b64 = (d: Uint8Array) => Buffer.from(d).toString('base64');
    expect((await n.run(new EkCertificateCache(dir))).ek_cert).toBe(b64(first));
    expect(n.reads()).toBe(1);
    expect((await n.run(new EkCertificateCache(dir))).ek_cert).toBe(b64(first));
    expect(n.reads()).toBe(1);
    // The platform renews the certificate in NV: named from NV once the copy is a day old.
    inNv = renewed;
    expect((await n.run(new EkCertificateCache(dir, { now: () => Date.now() + EK_CERT_CACHE_MAX_AGE_MS + 60_000 }))).ek_cert).toBe(b64(renewed));
    expect(n.reads()).toBe(2);
    expect((await n.run(new EkCertificateCache(dir))).ek_cert).toBe(b64(renewed));
    expect(n.reads()).toBe(2);
  });
});

describe('EkCertificateCache with swtpm (an EK certificate swtpm_setup put in NV)', () => {
  let tpmProc: RunningSwtpm;
  beforeAll(async () => {
    tpmProc = await startSwtpm({ ekCert: true });
  }, 60_000);
  afterAll(() => tpmProc?.stop());

  it('keeps the NV certificate, whose key is the EK the TPM vouches for, and names the same bytes from the cache', async () => {
    const dir = stateDir();
    const names: (string | undefined)[] = [];
    const nvReads: number[] = [];
    for (let i = 0; i < 3; i++) {
      const tpm = await openTpmDevice({ tcti: tpmProc.tcti });
      try {
        const ak = await loadOrCreateAk(tpm, { persistentHandle: 0x81010002, persist: true });
        let reads = 0;
        const counting: TpmDevice = Object.create(tpm, { readNv: { value: (i: number) => (reads++, tpm.readNv(i)) } }) as TpmDevice;
        const c = new IdentityContributor({ tpm: counting, ak: ak.ak, ekAlg: 'rsa', ekPublicCache: new EkPublicCache(dir), ekCertificateCache: new EkCertificateCache(dir) });
        names.push((await c.identity()).ek_cert);
        nvReads.push(reads);
        await c.close();
        await ak.release();
      } finally {
        await tpm.close();
      }
    }
    const nv = Buffer.from(names[0]!, 'base64');
    expect(nv.length).toBeGreaterThan(500);
    expect(names).toEqual([names[0], names[0], names[0]]);
    expect(nvReads).toEqual([1, 0, 0]);
    expect(await readFile(join(dir, 'ek-rsa.crt'))).toEqual(nv);
  }, 60_000);
});
