/**
 * Decoding of CA store entries: a PEM file with one or more certificates (text before, between
 * or after the blocks is ignored, as in vendor files that start with an `openssl x509 -text`
 * dump), or a single DER certificate. Pure: the KBS reads the files and passes the bytes.
 */
import { IdentityError } from './errors.js';
import { BasicConstraintsExtension, X509Certificate } from './internal/x509.js';

export type { X509Certificate };

/** A CA store file larger than this is refused (vendor bundles are a few KiB). */
export const MAX_CA_FILE_BYTES = 1024 * 1024;
const MAX_CERTS_PER_FILE = 256;
const PEM_BLOCK = /-----BEGIN CERTIFICATE-----([A-Za-z0-9+/=\s]+?)-----END CERTIFICATE-----/g;

function toCaCert(der: Uint8Array, label: string): X509Certificate {
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(der);
  } catch (err) {
    throw new IdentityError('CA_CERT_INVALID', `${label}: not a decodable certificate`, { cause: err });
  }
  const bc = cert.getExtension(BasicConstraintsExtension);
  // SECURITY: only CA certificates belong in the EK trust store; an end-entity certificate there
  // would be an anchor that can never legitimately issue, i.e. a misconfiguration (RFC 5280 §4.2.1.9).
  if (bc === null || !bc.ca) throw new IdentityError('CA_CERT_INVALID', `${label}: not a CA certificate`);
  return cert;
}

/** Decode every certificate in one CA store file. `label` names the file in error messages. */
export function decodeCaCertificates(bytes: Uint8Array, label = 'CA file'): X509Certificate[] {
  // SECURITY: bound the input before decoding (DoS by a huge file in the store directory).
  if (bytes.length > MAX_CA_FILE_BYTES) throw new IdentityError('CA_CERT_INVALID', `${label}: larger than ${MAX_CA_FILE_BYTES} bytes`);
  const text = Buffer.from(bytes).toString('latin1');
  if (text.includes('-----BEGIN CERTIFICATE-----')) {
    const out: X509Certificate[] = [];
    for (const m of text.matchAll(PEM_BLOCK)) {
      if (out.length >= MAX_CERTS_PER_FILE) throw new IdentityError('CA_CERT_INVALID', `${label}: more than ${MAX_CERTS_PER_FILE} certificates`);
      out.push(toCaCert(new Uint8Array(Buffer.from((m[1] ?? '').replace(/\s+/g, ''), 'base64')), `${label} #${out.length + 1}`));
    }
    // SECURITY: a BEGIN marker without a complete block is a damaged file; skipping it silently
    // could drop an anchor the owner expects (fail closed).
    if (out.length !== text.split('-----BEGIN CERTIFICATE-----').length - 1) throw new IdentityError('CA_CERT_INVALID', `${label}: incomplete PEM block`);
    return out;
  }
  return [toCaCert(bytes, label)];
}
