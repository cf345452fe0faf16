import 'reflect-metadata';
import { KeyObject, webcrypto } from 'node:crypto';
import * as x509 from '@peculiar/x509';
import { derInteger, derIa5 } from './der.js';

/**
 * A SYNTHETIC AMD SEV-SNP signing chain for tests: an ARK and an ASK (RSA, RSASSA-PSS SHA-384
 * signatures, as AMD's) and VCEKs (EC P-384) carrying AMD's VCEK extensions. Nothing here is
 * AMD's: it exists so tests can exercise chain verification and sign reports, and it must only
 * ever be configured as a trust anchor by tests.
 */
export interface SyntheticAmdChain {
  readonly generation: string;
  readonly arkPem: string;
  readonly askPem: string;
  readonly arkDer: Uint8Array;
  readonly askDer: Uint8Array;
  /** Issue a VCEK for a chip and TCB. */
  issueVcek(options?: IssueVcekOptions): Promise<SyntheticVcek>;
}

export interface SyntheticTcb {
  readonly bootloader: number;
  readonly tee: number;
  readonly snp: number;
  readonly microcode: number;
  readonly fmc?: number;
}

export interface IssueVcekOptions {
  /** Default `<generation>-B0`. */
  readonly productName?: string;
  readonly tcb?: SyntheticTcb;
  /** 64 bytes (8 on Turin); default 0x5a repeated. */
  readonly hwId?: Uint8Array;
  readonly notBefore?: Date;
  readonly notAfter?: Date;
  /** Leave out one of the AMD extensions (by OID) to test refusals. */
  readonly omitExtension?: string;
}

export interface SyntheticVcek {
  readonly der: Uint8Array;
  readonly pem: string;
  /** node:crypto private key (EC P-384) that signs SNP reports. */
  readonly privateKey: KeyObject;
  readonly tcb: SyntheticTcb;
  readonly hwId: Uint8Array;
  readonly productName: string;
}

export const DEFAULT_SYNTHETIC_TCB: SyntheticTcb = Object.freeze({ bootloader: 4, tee: 0, snp: 24, microcode: 219 });
const AMD_OID = '1.3.6.1.4.1.3704.1';
const RSA_PSS = { name: 'RSA-PSS', hash: 'SHA-384', publicExponent: new Uint8Array([1, 0, 1]), modulusLength: 2048 };
const ECDSA_P384 = { name: 'ECDSA', namedCurve: 'P-384' };
const YEAR_MS = 365 * 24 * 3600 * 1000;


const name = (cn: string): string => `CN=${cn}, O=Keyhold synthetic test chain (not AMD), C=US`;

/** Create a synthetic ARK/ASK pair named like AMD's (`ARK-<generation>`, `SEV-<generation>`). */
export async function createSyntheticAmdChain(options: { generation?: string; now?: Date } = {}): Promise<SyntheticAmdChain> {
  const generation = options.generation ?? 'Milan';
  const now = options.now ?? new Date();
  const notBefore = new Date(now.getTime() - YEAR_MS);
  const notAfter = new Date(now.getTime() + 10 * YEAR_MS);
  const subtle = webcrypto.subtle;
  const ark = (await subtle.generateKey(RSA_PSS, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
  const ask = (await subtle.generateKey(RSA_PSS, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
  const pss = { name: 'RSA-PSS', saltLength: 48 };
  const caExtensions = (pathLength: number, key: webcrypto.CryptoKey): Promise<x509.Extension[]> =>
    x509.SubjectKeyIdentifierExtension.create(key).then((ski) => [
      new x509.BasicConstraintsExtension(true, pathLength, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      ski,
    ]);
  const arkCert = await x509.X509CertificateGenerator.create({
    serialNumber: '010000',
    subject: name(`ARK-${generation}`),
    issuer: name(`ARK-${generation}`),
    notBefore,
    notAfter,
    signingAlgorithm: pss,
    publicKey: ark.publicKey,
    signingKey: ark.privateKey,
    extensions: await caExtensions(1, ark.publicKey),
  });
  const askCert = await x509.X509CertificateGenerator.create({
    serialNumber: '010001',
    subject: name(`SEV-${generation}`),
    issuer: arkCert.subject,
    notBefore,
    notAfter,
    signingAlgorithm: pss,
    publicKey: ask.publicKey,
    signingKey: ark.privateKey,
    extensions: await caExtensions(0, ask.publicKey),
  });
  let serial = 1;
  return {
    generation,
    arkPem: arkCert.toString('pem'),
    askPem: askCert.toString('pem'),
    arkDer: new Uint8Array(arkCert.rawData),
    askDer: new Uint8Array(askCert.rawData),
    async issueVcek(o: IssueVcekOptions = {}): Promise<SyntheticVcek> {
      const productName = o.productName ?? `${generation}-B0`;
      const tcb = o.tcb ?? DEFAULT_SYNTHETIC_TCB;
      const turin = productName.startsWith('Turin');
      const hwId = o.hwId ?? new Uint8Array(turin ? 8 : 64).fill(0x5a);
      const keys = (await subtle.generateKey(ECDSA_P384, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
      const ext = (suffix: string, value: Uint8Array): x509.Extension[] =>
        o.omitExtension === `${AMD_OID}.${suffix}` ? [] : [new x509.Extension(`${AMD_OID}.${suffix}`, false, value)];
      const cert = await x509.X509CertificateGenerator.create({
        serialNumber: `02${String(serial++).padStart(4, '0')}`,
        subject: name('SEV-VCEK'),
        issuer: askCert.subject,
        notBefore: o.notBefore ?? notBefore,
        notAfter: o.notAfter ?? notAfter,
        signingAlgorithm: pss,
        publicKey: keys.publicKey,
        signingKey: ask.privateKey,
        extensions: [
          ...ext('1', derInteger(1)),
          ...ext('2', derIa5(productName)),
          ...ext('3.1', derInteger(tcb.bootloader)),
          ...ext('3.2', derInteger(tcb.tee)),
          ...ext('3.3', derInteger(tcb.snp)),
          ...ext('3.8', derInteger(tcb.microcode)),
          ...(turin ? ext('3.9', derInteger(tcb.fmc ?? 0)) : []),
          // AMD's VCEKs carry the hardware id as the raw extension value.
          ...ext('4', hwId),
        ],
      });
      return {
        der: new Uint8Array(cert.rawData),
        pem: cert.toString('pem'),
        privateKey: KeyObject.from(keys.privateKey),
        tcb,
        hwId,
        productName,
      };
    },
  };
}
