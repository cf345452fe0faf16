/**
 * The owner's admin private key, held by WebCrypto as a NON-extractable key: the page can sign
 * with it but neither it nor any script can read the key bytes back. Only PKCS#8 PEM of Ed25519
 * (tokens `alg: EdDSA`) and EC P-256 (`ES256`) keys are accepted, as the KBS accepts only those.
 */
export type AdminAlg = 'EdDSA' | 'ES256';

export interface AdminKey {
  readonly alg: AdminAlg;
  readonly key: CryptoKey;
}

export class AdminKeyError extends Error {
  override readonly name = 'AdminKeyError';
}

/** PEM files larger than this are not private keys (a cap before decoding). */
const MAX_PEM_CHARS = 16 * 1024;
const PKCS8 = /-----BEGIN PRIVATE KEY-----([A-Za-z0-9+/=\s]+)-----END PRIVATE KEY-----/;

/** The DER bytes of the PKCS#8 block in a PEM text. */
export function pkcs8FromPem(pem: string): Uint8Array<ArrayBuffer> {
  if (pem.length > MAX_PEM_CHARS) throw new AdminKeyError('the file is too large to be a private key');
  if (/-----BEGIN (EC |ENCRYPTED |RSA |OPENSSH )PRIVATE KEY-----/.test(pem)) {
    throw new AdminKeyError('the key must be an unencrypted PKCS#8 PEM ("BEGIN PRIVATE KEY"); convert it with: openssl pkcs8 -topk8 -nocrypt -in KEY');
  }
  const m = PKCS8.exec(pem);
  if (m?.[1] === undefined) throw new AdminKeyError('no "BEGIN PRIVATE KEY" block in the file');
  let bin: string;
  try {
    bin = atob(m[1].replace(/\s+/g, ''));
  } catch {
    throw new AdminKeyError('the PEM body is not base64');
  }
  const der = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) der[i] = bin.charCodeAt(i);
  return der;
}

/** Import a PKCS#8 PEM as a non-extractable signing key (Ed25519 first, then ECDSA P-256). */
export async function importAdminKey(pem: string, subtle: SubtleCrypto = crypto.subtle): Promise<AdminKey> {
  const der = pkcs8FromPem(pem);
  try {
    return { alg: 'EdDSA', key: await subtle.importKey('pkcs8', der, { name: 'Ed25519' }, false, ['sign']) };
  } catch {
    // Not an Ed25519 key: try P-256.
  }
  try {
    return { alg: 'ES256', key: await subtle.importKey('pkcs8', der, { name: 'ECDSA', namedCurve: 'P-256' }, false, ['sign']) };
  } catch {
    throw new AdminKeyError('the key must be Ed25519 or EC P-256 (the KBS accepts only EdDSA and ES256 admin tokens)');
  }
}
