// EK certificates from a real swtpm: swtpm_setup --create-ek-cert writes RSA-2048 (NV 0x01c00002,
// EK 0x81010001) and ECC P-384 (NV 0x01c00016, EK 0x81010016) EK certificates signed by swtpm's
// local CA (/etc/swtpm-localca.conf). They must validate against that CA only.
import 'reflect-metadata';
import { execFile } from 'node:child_process';
import { generateKeyPairSync, type webcrypto } from 'node:crypto';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import * as x509 from '@peculiar/x509';
import { AsnConvert } from '@peculiar/asn1-schema';
import { AlgorithmIdentifier, Certificate } from '@peculiar/asn1-x509';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort, spawnProcess, waitForPort, type SpawnedProcess } from '@keyhold/test-harness';
import { parseTpm2bPublic } from '../tpm/public.js';
import { decodeUnverifiedEkCertificate, stripEkCertPadding, verifyEkCertificate } from './ek-certificate.js';
import { IdentityError } from './errors.js';
import { ekHash, tpmPublicToSpkiDer } from './spki.js';

const run = promisify(execFile);
const repoRoot = fileURLToPath(new URL('../../../../', import.meta.url));
const vendorDir = path.resolve(repoRoot, '../shared/corpus/ek-certs/tpm_cert_store');
const haveTools = existsSync('/usr/bin/swtpm_setup') && existsSync('/usr/bin/tpm2_nvread') && existsSync('/etc/swtpm-localca.conf');

async function consecutivePorts(): Promise<[number, number]> {
  for (;;) {
    const port = await freePort();
    const ok = await new Promise<boolean>((resolve) => {
      const srv = createServer();
      srv.once('error', () => resolve(false));
      srv.listen(port + 1, '127.0.0.1', () => srv.close(() => resolve(true)));
    });
    if (ok) return [port, port + 1];
  }
}

/** swtpm-localca's issuer certificate and its root, located through its config file. */
function localCaCerts(): { issuer: x509.X509Certificate; root: x509.X509Certificate } {
  const conf = readFileSync('/etc/swtpm-localca.conf', 'utf8');
  const issuerPath = /^\s*issuercert\s*=\s*(\S+)/m.exec(conf)?.[1] ?? '/var/lib/swtpm-localca/issuercert.pem';
  const rootPath = path.join(path.dirname(issuerPath), 'swtpm-localca-rootca-cert.pem');
  return { issuer: new x509.X509Certificate(readFileSync(issuerPath, 'utf8')), root: new x509.X509Certificate(readFileSync(rootPath, 'utf8')) };
}

async function codeOf(p: Promise<unknown>): Promise<string | undefined> {
  try {
    await p;
  } catch (e) {
    if (e instanceof IdentityError) return e.code;
    throw e;
  }
  return undefined;
}

describe.skipIf(!haveTools)('verifyEkCertificate with swtpm EK certificates', () => {
  let dir: string;
  let swtpm: SpawnedProcess;
  const ek: Record<'rsa' | 'ecc', { certNv: Uint8Array; spki: Uint8Array }> = {} as never;
  let ca: { issuer: x509.X509Certificate; root: x509.X509Certificate };

  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'keyhold-ekcert-'));
    await run('swtpm_setup', ['--tpm2', '--tpmstate', dir, '--create-ek-cert', '--overwrite', '--ecc']);
    const [port, ctrl] = await consecutivePorts();
    swtpm = spawnProcess({
      name: 'swtpm',
      command: 'swtpm',
      args: ['socket', '--tpm2', '--server', `type=tcp,port=${port},bindaddr=127.0.0.1`, '--ctrl', `type=tcp,port=${ctrl},bindaddr=127.0.0.1`,
        '--tpmstate', `dir=${dir}`, '--flags', 'not-need-init,startup-clear'],
    });
    await waitForPort(port, swtpm);
    const env = { ...process.env, TPM2TOOLS_TCTI: `swtpm:host=127.0.0.1,port=${port}` };
    const tpm = (...args: string[]): Promise<unknown> => run(args[0] as string, args.slice(1), { env, cwd: dir });
    for (const [alg, nv, handle] of [['rsa', '0x01c00002', '0x81010001'], ['ecc', '0x01c00016', '0x81010016']] as const) {
      await tpm('tpm2_nvread', nv, '-o', `${alg}.cert`);
      await tpm('tpm2_readpublic', '-c', handle, '-o', `${alg}.pub`);
      ek[alg] = {
        certNv: new Uint8Array(await readFile(path.join(dir, `${alg}.cert`))),
        spki: tpmPublicToSpkiDer(parseTpm2bPublic(new Uint8Array(await readFile(path.join(dir, `${alg}.pub`))))),
      };
    }
    ca = localCaCerts();
  });

  afterAll(async () => {
    await swtpm?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  for (const alg of ['rsa', 'ecc'] as const) {
    it(`${alg}: validates against swtpm's local CA and reports the TPM identity from the SAN`, async () => {
      const der = stripEkCertPadding(ek[alg].certNv);
      const v = await verifyEkCertificate({ ekCertDer: der, caCerts: [ca.issuer, ca.root], ekPublicSpkiDer: ek[alg].spki, now: new Date() });
      expect(v.tpmManufacturer).toBe('id:00001014');
      expect(v.tpmModel).toBe('swtpm');
      expect(v.tpmVersion).toMatch(/^id:[0-9A-F]{8}$/i);
      expect(v.ekHash).toBe(ekHash(ek[alg].spki));
      expect(v.issuerPath).toEqual([ca.issuer.subject, ca.root.subject]);
      // The intermediate alone is a trust anchor too (store certificates are anchors).
      await expect(verifyEkCertificate({ ekCertDer: der, caCerts: [ca.issuer], ekPublicSpkiDer: ek[alg].spki, now: new Date() })).resolves.toBeDefined();
      expect(decodeUnverifiedEkCertificate(der).ekHash).toBe(v.ekHash);
    });

    it(`${alg}: an unknown CA, a root without its intermediate, or the vendor store → EK_CERT_UNKNOWN_CA`, async () => {
      const der = stripEkCertPadding(ek[alg].certNv);
      const base = { ekCertDer: der, ekPublicSpkiDer: ek[alg].spki, now: new Date() };
      expect(await codeOf(verifyEkCertificate({ ...base, caCerts: [] }))).toBe('EK_CERT_UNKNOWN_CA');
      expect(await codeOf(verifyEkCertificate({ ...base, caCerts: [ca.root] }))).toBe('EK_CERT_UNKNOWN_CA');
      const vendor = loadVendorStore();
      if (vendor.length > 0) expect(await codeOf(verifyEkCertificate({ ...base, caCerts: vendor }))).toBe('EK_CERT_UNKNOWN_CA');
    });
  }

  it('a genuine certificate paired with another key → EK_CERT_KEY_MISMATCH', async () => {
    const der = stripEkCertPadding(ek.rsa.certNv);
    const soft = new Uint8Array(generateKeyPairSync('rsa', { modulusLength: 2048 }).publicKey.export({ type: 'spki', format: 'der' }));
    const caCerts = [ca.issuer, ca.root];
    expect(await codeOf(verifyEkCertificate({ ekCertDer: der, caCerts, ekPublicSpkiDer: soft, now: new Date() }))).toBe('EK_CERT_KEY_MISMATCH');
    expect(await codeOf(verifyEkCertificate({ ekCertDer: der, caCerts, ekPublicSpkiDer: ek.ecc.spki, now: new Date() }))).toBe('EK_CERT_KEY_MISMATCH');
  });

  it('outside the validity period → EK_CERT_EXPIRED', async () => {
    const der = stripEkCertPadding(ek.rsa.certNv);
    const base = { ekCertDer: der, caCerts: [ca.issuer, ca.root], ekPublicSpkiDer: ek.rsa.spki };
    expect(await codeOf(verifyEkCertificate({ ...base, now: new Date('2001-01-01T00:00:00Z') }))).toBe('EK_CERT_EXPIRED');
    expect(await codeOf(verifyEkCertificate({ ...base, now: new Date(253402300800000 + 86_400_000) }))).toBe('EK_CERT_EXPIRED');
  });

  it('malformed, padded, tampered and CA-as-EK inputs are refused with typed errors', async () => {
    const der = stripEkCertPadding(ek.rsa.certNv);
    const base = { caCerts: [ca.issuer, ca.root], ekPublicSpkiDer: ek.rsa.spki, now: new Date() };
    // NV padding: stripped by stripEkCertPadding, refused by verify when left on.
    const padded = Uint8Array.from([...der, ...new Uint8Array(64).fill(0xff)]);
    expect(Buffer.from(stripEkCertPadding(padded))).toEqual(Buffer.from(der));
    expect(await codeOf(verifyEkCertificate({ ...base, ekCertDer: padded }))).toBe('EK_CERT_MALFORMED');
    expect(await codeOf(verifyEkCertificate({ ...base, ekCertDer: der.subarray(0, der.length - 1) }))).toBe('EK_CERT_MALFORMED');
    expect(() => stripEkCertPadding(der.subarray(0, 100))).toThrow(IdentityError);
    expect(() => stripEkCertPadding(new Uint8Array([0x30, 0x84, 1, 2, 3, 4]))).toThrow(IdentityError);
    expect(await codeOf(verifyEkCertificate({ ...base, ekCertDer: new Uint8Array(20_000) }))).toBe('EK_CERT_MALFORMED');
    // A flipped bit in the signature: the issuer's key no longer verifies it.
    const flipped = Uint8Array.from(der);
    flipped[flipped.length - 3] = (flipped[flipped.length - 3] as number) ^ 0x01;
    expect(await codeOf(verifyEkCertificate({ ...base, ekCertDer: flipped }))).toBe('EK_CERT_UNKNOWN_CA');
    // The local CA's own certificate presented as an EK certificate.
    expect(await codeOf(verifyEkCertificate({ ...base, caCerts: [ca.root], ekCertDer: new Uint8Array(ca.issuer.rawData) }))).toBe('EK_CERT_CHAIN_INVALID');
  });
});

function loadVendorStore(): x509.X509Certificate[] {
  if (!existsSync(vendorDir)) return [];
  return readdirSync(vendorDir).flatMap((f) =>
    (readFileSync(path.join(vendorDir, f), 'utf8').match(/-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g) ?? []).map((p) => new x509.X509Certificate(p)),
  );
}

describe('verifyEkCertificate with generated PKIs (path rules)', () => {
  const alg = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;
  const day = 86_400_000;
  const now = new Date();
  const validity = { notBefore: new Date(now.getTime() - day), notAfter: new Date(now.getTime() + day) };
  const keys = async (): Promise<webcrypto.CryptoKeyPair> => (await crypto.subtle.generateKey(alg, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;

  async function pki(opts: { rootPathLength?: number; issuerIsCa?: boolean; leafExtensions?: x509.Extension[]; issuerExtensions?: x509.Extension[] } = {}) {
    const rootKeys = await keys();
    const root = await x509.X509CertificateGenerator.createSelfSigned({
      name: 'CN=Test EK Root', keys: rootKeys, signingAlgorithm: alg, ...validity,
      extensions: [new x509.BasicConstraintsExtension(true, opts.rootPathLength, true), new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign, true)],
    });
    const caKeys = await keys();
    const ca = await x509.X509CertificateGenerator.create({
      subject: 'CN=Test EK CA', issuer: root.subject, publicKey: caKeys.publicKey, signingKey: rootKeys.privateKey, signingAlgorithm: alg, ...validity,
      extensions: opts.issuerExtensions ?? [new x509.BasicConstraintsExtension(opts.issuerIsCa ?? true, undefined, true)],
    });
    const ekKeys = await keys();
    const leaf = await x509.X509CertificateGenerator.create({
      subject: '', issuer: ca.subject, publicKey: ekKeys.publicKey, signingKey: caKeys.privateKey, signingAlgorithm: alg, ...validity,
      extensions: opts.leafExtensions ?? [
        new x509.SubjectAlternativeNameExtension([{ type: 'dn', value: '2.23.133.2.1=id:49465800, 2.23.133.2.2=SLB9670, 2.23.133.2.3=id:00070055' }], true),
        new x509.BasicConstraintsExtension(false, undefined, true),
      ],
    });
    const spki = new Uint8Array(await crypto.subtle.exportKey('spki', ekKeys.publicKey));
    return { root, ca, der: new Uint8Array(leaf.rawData), spki };
  }

  it('accepts a TPM-style EK certificate (empty subject, critical SAN) and parses the SAN claims', async () => {
    const p = await pki();
    const v = await verifyEkCertificate({ ekCertDer: p.der, caCerts: [p.root, p.ca], ekPublicSpkiDer: p.spki, now });
    expect(v).toMatchObject({ tpmManufacturer: 'id:49465800', tpmModel: 'SLB9670', tpmVersion: 'id:00070055' });
  });

  it('refuses an unknown critical extension → EK_CERT_UNSUPPORTED_CRITICAL_EXTENSION', async () => {
    const p = await pki({ leafExtensions: [new x509.Extension('1.3.6.1.4.1.99999.1', true, new Uint8Array([5, 0]))] });
    expect(await codeOf(verifyEkCertificate({ ekCertDer: p.der, caCerts: [p.root, p.ca], ekPublicSpkiDer: p.spki, now }))).toBe('EK_CERT_UNSUPPORTED_CRITICAL_EXTENSION');
    const q = await pki({ issuerExtensions: [new x509.BasicConstraintsExtension(true, undefined, true), new x509.Extension('2.5.29.30', true, new Uint8Array([0x30, 0]))] });
    expect(await codeOf(verifyEkCertificate({ ekCertDer: q.der, caCerts: [q.root, q.ca], ekPublicSpkiDer: q.spki, now }))).toBe('EK_CERT_UNSUPPORTED_CRITICAL_EXTENSION');
  });

  it('refuses an issuer that is not a CA, lacks keyCertSign, or exceeds its path length → EK_CERT_CHAIN_INVALID', async () => {
    for (const issuerExtensions of [
      [new x509.BasicConstraintsExtension(false, undefined, true)],
      [],
      [new x509.BasicConstraintsExtension(true, undefined, true), new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true)],
    ]) {
      const p = await pki({ issuerExtensions });
      expect(await codeOf(verifyEkCertificate({ ekCertDer: p.der, caCerts: [p.root, p.ca], ekPublicSpkiDer: p.spki, now }))).toBe('EK_CERT_CHAIN_INVALID');
    }
    const tooDeep = await pki({ rootPathLength: 0 });
    expect(await codeOf(verifyEkCertificate({ ekCertDer: tooDeep.der, caCerts: [tooDeep.root, tooDeep.ca], ekPublicSpkiDer: tooDeep.spki, now }))).toBe('EK_CERT_CHAIN_INVALID');
    const deepEnough = await pki({ rootPathLength: 1 });
    await expect(verifyEkCertificate({ ekCertDer: deepEnough.der, caCerts: [deepEnough.root, deepEnough.ca], ekPublicSpkiDer: deepEnough.spki, now })).resolves.toBeDefined();
  });

  it('accepts an EK certificate whose SPKI is labelled id-RSAES-OAEP (as some TPM vendors issue) and matches the RSA key', async () => {
    const rsa = { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256', publicExponent: new Uint8Array([1, 0, 1]), modulusLength: 2048 } as const;
    const caKeys = (await crypto.subtle.generateKey(rsa, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
    const ca = await x509.X509CertificateGenerator.createSelfSigned({
      name: 'CN=OAEP Test CA', keys: caKeys, signingAlgorithm: rsa, ...validity,
      extensions: [new x509.BasicConstraintsExtension(true, undefined, true)],
    });
    const ekKeys = (await crypto.subtle.generateKey(rsa, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
    const plain = await x509.X509CertificateGenerator.create({
      subject: 'CN=ek', issuer: ca.subject, publicKey: ekKeys.publicKey, signingKey: caKeys.privateKey, signingAlgorithm: rsa, ...validity,
      extensions: [new x509.BasicConstraintsExtension(false, undefined, true)],
    });
    // Relabel the SPKI algorithm as id-RSAES-OAEP (1.2.840.113549.1.1.7) and re-sign the TBS.
    const asn = AsnConvert.parse(plain.rawData, Certificate);
    asn.tbsCertificate.subjectPublicKeyInfo.algorithm = new AlgorithmIdentifier({ algorithm: '1.2.840.113549.1.1.7', parameters: new Uint8Array([0x30, 0x00]).buffer });
    const tbs = AsnConvert.serialize(asn.tbsCertificate);
    asn.signatureValue = await crypto.subtle.sign('RSASSA-PKCS1-v1_5', caKeys.privateKey, tbs);
    const der = new Uint8Array(AsnConvert.serialize(asn));
    const spki = new Uint8Array(await crypto.subtle.exportKey('spki', ekKeys.publicKey));
    const v = await verifyEkCertificate({ ekCertDer: der, caCerts: [ca], ekPublicSpkiDer: spki, now });
    expect(v.ekHash).toBe(ekHash(spki));
    const other = new Uint8Array(generateKeyPairSync('rsa', { modulusLength: 2048 }).publicKey.export({ type: 'spki', format: 'der' }));
    expect(await codeOf(verifyEkCertificate({ ekCertDer: der, caCerts: [ca], ekPublicSpkiDer: other, now }))).toBe('EK_CERT_KEY_MISMATCH');
  });
});
