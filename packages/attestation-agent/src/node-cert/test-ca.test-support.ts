/**
 * A node CA for unit tests: a self-signed P-256 root made with @peculiar/x509 (the library the KBS
 * issues node certificates with), and leaf certificates for a given public key with the fields the
 * KBS puts there. Not a stand-in for the KBS's issuing code: the e2e test checks the real one.
 */
import { webcrypto } from 'node:crypto';
import 'reflect-metadata';
import {
  BasicConstraintsExtension,
  ExtendedKeyUsage,
  ExtendedKeyUsageExtension,
  KeyUsageFlags,
  KeyUsagesExtension,
  SubjectAlternativeNameExtension,
  X509CertificateGenerator,
  type X509Certificate,
} from '@peculiar/x509';

const ALG = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;
type Keys = Awaited<ReturnType<typeof webcrypto.subtle.generateKey>> & { privateKey: webcrypto.CryptoKey; publicKey: webcrypto.CryptoKey };
type Gen = Extract<Parameters<typeof X509CertificateGenerator.create>[0], { signingKey: unknown }>;

export interface TestCa {
  readonly cert: X509Certificate;
  readonly pem: string;
  issue(spkiDer: Uint8Array, opts?: { notBefore?: Date; notAfter?: Date; digitalSignature?: boolean; spiffeId?: string; serial?: string }): Promise<X509Certificate>;
}

export async function createTestCa(name = 'CN=test node CA'): Promise<TestCa> {
  const keys = (await webcrypto.subtle.generateKey(ALG, false, ['sign', 'verify'])) as Keys;
  const now = Date.now();
  const cert = await X509CertificateGenerator.createSelfSigned({
    serialNumber: '01',
    name,
    notBefore: new Date(now - 3600_000),
    notAfter: new Date(now + 24 * 3600_000),
    keys: keys as unknown as Parameters<typeof X509CertificateGenerator.createSelfSigned>[0]['keys'],
    signingAlgorithm: ALG,
    extensions: [new BasicConstraintsExtension(true, undefined, true), new KeyUsagesExtension(KeyUsageFlags.keyCertSign | KeyUsageFlags.cRLSign, true)],
  });
  return {
    cert,
    pem: cert.toString('pem'),
    async issue(spkiDer, opts = {}) {
      const notBefore = opts.notBefore ?? new Date(Date.now() - 1000);
      return X509CertificateGenerator.create({
        serialNumber: opts.serial ?? '0a1b2c',
        subject: 'CN=node',
        issuer: cert.subject,
        notBefore,
        notAfter: opts.notAfter ?? new Date(notBefore.getTime() + 3600_000),
        publicKey: spkiDer as unknown as Gen['publicKey'],
        signingKey: keys.privateKey as unknown as Gen['signingKey'],
        signingAlgorithm: ALG,
        extensions: [
          new KeyUsagesExtension(opts.digitalSignature === false ? KeyUsageFlags.keyEncipherment : KeyUsageFlags.digitalSignature, true),
          new ExtendedKeyUsageExtension([ExtendedKeyUsage.clientAuth]),
          new SubjectAlternativeNameExtension([{ type: 'url', value: opts.spiffeId ?? 'spiffe://test.example/keyhold/node/tpm/00' }]),
        ],
      });
    },
  };
}
