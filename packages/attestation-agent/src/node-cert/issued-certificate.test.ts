import { generateKeyPairSync } from 'node:crypto';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readHeldCertificate, removeNodeCert, writeNodeCertFiles } from './cert-files.js';
import { decodeIssuedCertificate } from './issued-certificate.js';
import { ensureNodeCertDir, loadOrCreateNodeKey, type NodeKey } from './node-key.js';
import { renewalDueAtMs, renewalNeeded } from './renewal.js';
import { createTestCa, type TestCa } from './test-ca.test-support.js';

const root = await mkdtemp(join(tmpdir(), 'kh-issued-'));
afterAll(() => rm(root, { recursive: true, force: true }));
let ca: TestCa;
let key: NodeKey;
const SPIFFE = `spiffe://e2e.test/keyhold/node/tpm/${'ab'.repeat(32)}`;

beforeAll(async () => {
  ca = await createTestCa();
  await ensureNodeCertDir(root);
  key = await loadOrCreateNodeKey(root);
});

async function answer(opts: Parameters<TestCa['issue']>[1] = {}, over: Record<string, unknown> = {}) {
  const leaf = await ca.issue(key.spkiDer, { spiffeId: SPIFFE, ...opts });
  return { certificate: leaf.toString('pem'), chain: ca.pem, serial: leaf.serialNumber, notBefore: leaf.notBefore.toISOString(), notAfter: leaf.notAfter.toISOString(), spiffeId: SPIFFE, ...over };
}

describe('the node-certificate answer', () => {
  it('is accepted for this key, signed by the chain, with digitalSignature; facts read back', async () => {
    const a = await answer();
    const issued = await decodeIssuedCertificate(a, key.spkiSha256, Date.now());
    expect(issued.spiffeId).toBe(SPIFFE);
    expect(issued.facts.spkiSha256).toBe(key.spkiSha256);
    expect(issued.facts.uris).toEqual([SPIFFE]);
    expect(issued.facts.serial).toBe('0a1b2c');
    expect(issued.chainPem).toContain('BEGIN CERTIFICATE');
    await writeNodeCertFiles(root, { certificatePem: issued.certificatePem, bundlePem: issued.chainPem });
    expect((await stat(join(root, 'cert.pem'))).mode & 0o777).toBe(0o644);
    expect(await readFile(join(root, 'bundle.pem'), 'utf8')).toBe(issued.chainPem);
    const held = await readHeldCertificate(root);
    expect(held).toMatchObject({ spkiSha256: key.spkiSha256, serial: '0a1b2c' });
    expect(await removeNodeCert(root)).toBe(true);
    expect(await removeNodeCert(root)).toBe(false);
    expect(await readHeldCertificate(root)).toBeUndefined();
  });

  it('refuses an answer that is not for this key, not signed by the chain, lacks digitalSignature, or is not valid now', async () => {
    const other = generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey.export({ format: 'der', type: 'spki' });
    const foreign = await ca.issue(new Uint8Array(other));
    await expect(decodeIssuedCertificate({ ...(await answer()), certificate: foreign.toString('pem') }, key.spkiSha256, Date.now())).rejects.toMatchObject({ code: 'NODE_CERT_INVALID', message: expect.stringMatching(/not for this node key/) });
    const otherCa = await createTestCa('CN=other CA');
    await expect(decodeIssuedCertificate(await answer({}, { chain: otherCa.pem }), key.spkiSha256, Date.now())).rejects.toMatchObject({ message: expect.stringMatching(/not signed by the first certificate/) });
    await expect(decodeIssuedCertificate(await answer({ digitalSignature: false }), key.spkiSha256, Date.now())).rejects.toMatchObject({ message: expect.stringMatching(/digitalSignature/) });
    const past = new Date(Date.now() - 7200_000);
    await expect(decodeIssuedCertificate(await answer({ notBefore: past, notAfter: new Date(past.getTime() + 3600_000) }), key.spkiSha256, Date.now())).rejects.toMatchObject({ message: expect.stringMatching(/not valid now/) });
  });

  it('refuses malformed answers without reaching the parser unbounded', async () => {
    const a = await answer();
    const now = Date.now();
    for (const [bad, re] of [
      [null, /not a JSON object/],
      [{ ...a, certificate: 1 }, /no certificate/],
      [{ ...a, certificate: 'x'.repeat(70_000) }, /no certificate/],
      [{ ...a, chain: undefined }, /no chain/],
      [{ ...a, certificate: 'garbage' }, /not PEM|certificates, not 1/],
      [{ ...a, certificate: `${a.certificate}${a.certificate}` }, /holds 2 certificates, not 1/],
      [{ ...a, certificate: '-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n' }, /not an X\.509 certificate/],
      [{ ...a, chain: a.chain.repeat(9) }, /chain holds 9 certificates/],
    ] as const) {
      await expect(decodeIssuedCertificate(bad, key.spkiSha256, now), JSON.stringify(bad)?.slice(0, 60)).rejects.toMatchObject({ code: 'NODE_CERT_INVALID', message: expect.stringMatching(re) });
    }
    // A spiffeId that is not one is dropped, not trusted.
    expect((await decodeIssuedCertificate({ ...a, spiffeId: 'https://x' }, key.spkiSha256, now)).spiffeId).toBeUndefined();
  });
});

describe('renewal timing', () => {
  const h = { notBeforeMs: 0, notAfterMs: 3_600_000, spkiSha256: 'k' };
  it('renews at two-thirds of the lifetime, or at once when there is no certificate, another key, or it is expired', () => {
    expect(renewalDueAtMs(0, 3_600_000)).toBe(2_400_000);
    expect(renewalNeeded(h, 'k', 2_399_999)).toBe(false);
    expect(renewalNeeded(h, 'k', 2_400_000)).toBe(true);
    expect(renewalNeeded(undefined, 'k', 0)).toBe(true);
    expect(renewalNeeded(h, 'other', 10)).toBe(true);
    expect(renewalNeeded(h, 'k', 3_600_000)).toBe(true);
    expect(renewalNeeded({ ...h, notBeforeMs: 1000 }, 'k', 500)).toBe(true);
    expect(renewalDueAtMs(5, 5)).toBe(5);
  });
});
