/**
 * The PKCS#10 certificate request the daemon sends to `POST /kbs/v0/node-certificate`: the node key's
 * public key, self-signed with ECDSA P-256 / SHA-256 (proof that the requester holds the key). The
 * KBS chooses the certificate's subject, SPIFFE ID, usages and lifetime itself; the request's
 * subject is only a label. Built with @peculiar/x509 over node's WebCrypto.
 */
import { webcrypto } from 'node:crypto';
import { Pkcs10CertificateRequestGenerator } from './x509.js';
import type { NodeKey } from './node-key.js';

const EC_P256 = { name: 'ECDSA', namedCurve: 'P-256' } as const;

type CreateParams = Parameters<typeof Pkcs10CertificateRequestGenerator.create>[0];
type X509Crypto = NonNullable<Parameters<typeof Pkcs10CertificateRequestGenerator.create>[1]>;

/** The WebCrypto key pair of a node key (the private key is not extractable). */
export async function webCryptoKeyPair(key: NodeKey): Promise<webcrypto.CryptoKeyPair> {
  const pkcs8 = key.privateKey.export({ format: 'der', type: 'pkcs8' });
  try {
    const privateKey = await webcrypto.subtle.importKey('pkcs8', pkcs8, EC_P256, false, ['sign']);
    const publicKey = await webcrypto.subtle.importKey('spki', key.spkiDer, EC_P256, true, ['verify']);
    return { privateKey, publicKey };
  } finally {
    pkcs8.fill(0);
  }
}

/** A PEM `CERTIFICATE REQUEST` for `key`, subject `CN=<commonName>`. */
export async function buildNodeCsr(key: NodeKey, commonName: string): Promise<string> {
  // SECURITY: the label goes into a distinguished name; only a plain token is accepted, so no
  // DN syntax (`,`, `=`, `+`) can smuggle extra attributes into the request (RFC 4514 injection).
  if (!/^[A-Za-z0-9._:-]{1,64}$/.test(commonName)) throw new TypeError('buildNodeCsr: commonName must be 1-64 characters of [A-Za-z0-9._:-]');
  const csr = await Pkcs10CertificateRequestGenerator.create(
    { name: `CN=${commonName}`, keys: (await webCryptoKeyPair(key)) as unknown as CreateParams['keys'], signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' } as CreateParams['signingAlgorithm'] },
    webcrypto as unknown as X509Crypto,
  );
  return csr.toString('pem');
}
