import 'reflect-metadata';
import { KeyObject, sign, webcrypto } from 'node:crypto';
import * as x509 from '@peculiar/x509';
import { derEnumerated, derInteger, derOctets, derOid, derSequence } from './der.js';

/**
 * A SYNTHETIC Intel SGX/TDX PKI for tests: a root CA, a PCK platform CA, PCK certificates with
 * Intel's SGX extension, and a TCB signing certificate that signs collateral. Nothing here is
 * Intel's; configure it as a trust anchor only in tests.
 */
export interface SyntheticIntelPki {
  readonly rootPem: string;
  readonly rootDer: Uint8Array;
  /** The TCB-info issuer chain (signing certificate, root), PEM. */
  readonly tcbSigningChainPem: string;
  issuePck(options?: IssuePckOptions): Promise<SyntheticPck>;
  /** ECDSA P-256 SHA-256 signature (hex r‖s) of `text` by the TCB signing key. */
  signCollateral(text: string): string;
}

export interface IssuePckOptions {
  readonly fmspc?: string;
  readonly pceId?: string;
  readonly sgxTcbComponents?: readonly number[];
  readonly pceSvn?: number;
  /** Leave out the SGX extension (a certificate that is not a PCK certificate). */
  readonly omitSgxExtension?: boolean;
  readonly notAfter?: Date;
}

export interface SyntheticPck {
  /** leaf ‖ platform CA ‖ root, PEM, as a quote carries it. */
  readonly chainPem: string;
  readonly privateKey: KeyObject;
}

const ECDSA_P256 = { name: 'ECDSA', namedCurve: 'P-256' };
const SIGN = { name: 'ECDSA', hash: 'SHA-256' };
const YEAR_MS = 365 * 24 * 3600 * 1000;
const SGX = '1.2.840.113741.1.13.1';


const name = (cn: string): string => `CN=${cn}, O=Keyhold synthetic test PKI (not Intel), C=US`;

function sgxExtension(o: IssuePckOptions): Uint8Array {
  const comps = o.sgxTcbComponents ?? [6, 6, 2, 2, 3, 1, 0, 3, 0, 0, 0, 0, 0, 0, 0, 0];
  const tcb = derSequence(
    ...comps.map((v, i) => derSequence(derOid(`${SGX}.2.${i + 1}`), derInteger(v))),
    derSequence(derOid(`${SGX}.2.17`), derInteger(o.pceSvn ?? 11)),
    derSequence(derOid(`${SGX}.2.18`), derOctets(Uint8Array.from(comps))),
  );
  return derSequence(
    derSequence(derOid(`${SGX}.1`), derOctets(new Uint8Array(16).fill(7))),
    derSequence(derOid(`${SGX}.2`), tcb),
    derSequence(derOid(`${SGX}.3`), derOctets(Buffer.from(o.pceId ?? '0000', 'hex'))),
    derSequence(derOid(`${SGX}.4`), derOctets(Buffer.from(o.fmspc ?? '00806F050000', 'hex'))),
    derSequence(derOid(`${SGX}.5`), derEnumerated(1)),
  );
}

export async function createSyntheticIntelPki(options: { now?: Date } = {}): Promise<SyntheticIntelPki> {
  const now = options.now ?? new Date();
  const notBefore = new Date(now.getTime() - YEAR_MS);
  const notAfter = new Date(now.getTime() + 10 * YEAR_MS);
  const gen = async (): Promise<webcrypto.CryptoKeyPair> => (await webcrypto.subtle.generateKey(ECDSA_P256, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
  const [root, platform, tcbSigner] = [await gen(), await gen(), await gen()];
  const ca = (pathLength: number): x509.Extension[] => [
    new x509.BasicConstraintsExtension(true, pathLength, true),
    new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
  ];
  const rootCert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: '01',
    name: name('Synthetic SGX Root CA'),
    notBefore,
    notAfter,
    signingAlgorithm: SIGN,
    keys: root,
    extensions: ca(1),
  });
  const platformCert = await x509.X509CertificateGenerator.create({
    serialNumber: '02',
    subject: name('Synthetic SGX PCK Platform CA'),
    issuer: rootCert.subject,
    notBefore,
    notAfter,
    signingAlgorithm: SIGN,
    publicKey: platform.publicKey,
    signingKey: root.privateKey,
    extensions: ca(0),
  });
  const tcbCert = await x509.X509CertificateGenerator.create({
    serialNumber: '03',
    subject: name('Synthetic SGX TCB Signing'),
    issuer: rootCert.subject,
    notBefore,
    notAfter,
    signingAlgorithm: SIGN,
    publicKey: tcbSigner.publicKey,
    signingKey: root.privateKey,
    extensions: [new x509.BasicConstraintsExtension(false, undefined, true)],
  });
  const tcbKey = KeyObject.from(tcbSigner.privateKey);
  let serial = 16;
  return {
    rootPem: rootCert.toString('pem'),
    rootDer: new Uint8Array(rootCert.rawData),
    tcbSigningChainPem: `${tcbCert.toString('pem')}\n${rootCert.toString('pem')}\n`,
    signCollateral: (text: string) => sign('sha256', Buffer.from(text, 'utf8'), { key: tcbKey, dsaEncoding: 'ieee-p1363' }).toString('hex'),
    async issuePck(o: IssuePckOptions = {}): Promise<SyntheticPck> {
      const keys = await gen();
      const leaf = await x509.X509CertificateGenerator.create({
        serialNumber: (serial++).toString(16),
        subject: name('Synthetic SGX PCK Certificate'),
        issuer: platformCert.subject,
        notBefore,
        notAfter: o.notAfter ?? notAfter,
        signingAlgorithm: SIGN,
        publicKey: keys.publicKey,
        signingKey: platform.privateKey,
        extensions: [new x509.BasicConstraintsExtension(false, undefined, true), ...(o.omitSgxExtension === true ? [] : [new x509.Extension(SGX, false, sgxExtension(o))])],
      });
      return {
        chainPem: `${leaf.toString('pem')}\n${platformCert.toString('pem')}\n${rootCert.toString('pem')}\n`,
        privateKey: KeyObject.from(keys.privateKey),
      };
    },
  };
}
