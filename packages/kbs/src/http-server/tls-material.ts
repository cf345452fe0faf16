/**
 * The KBS's TLS material, read from the configured PEM files at start and on every SIGHUP: the
 * server certificate (chain), its private key (RSA or EC) and, for mutual TLS on the admin API, the
 * client CA certificates. Everything is checked before it is used, so a bad replacement file on a
 * reload leaves the running certificate in place (the caller logs the refusal).
 */
import { createPrivateKey, X509Certificate, type KeyObject } from 'node:crypto';
import { open } from 'node:fs/promises';

/** PEM files larger than this are refused (a certificate chain is a few KiB). */
const MAX_PEM_FILE_BYTES = 1024 * 1024;
const PEM_CERT = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;

export class TlsMaterialError extends Error {
  override readonly name = 'TlsMaterialError';
  readonly code = 'TLS_MATERIAL_INVALID' as const;
}

export interface TlsFiles {
  readonly certificateFile: string;
  readonly privateKeyFile: string;
  readonly clientCaFile?: string | undefined;
}

export interface TlsMaterial {
  /** PEM text for node's `tls.createSecureContext` / `server.setSecureContext`. */
  readonly cert: string;
  readonly key: string;
  /** Client CA PEM (mutual TLS for the admin API), when configured. */
  readonly ca: string | undefined;
  /** What to log: never key material. */
  readonly summary: { readonly subject: string; readonly notAfter: string; readonly keyType: string; readonly fingerprint256: string; readonly clientCas: number };
}

async function readPem(file: string, what: string): Promise<string> {
  let fh;
  try {
    fh = await open(file, 'r');
  } catch (cause) {
    const code = (cause as NodeJS.ErrnoException).code;
    throw new TlsMaterialError(`${what} ${file}: ${code === 'ENOENT' ? 'no such file' : code === 'EACCES' ? 'permission denied' : (cause as Error).message}`, { cause });
  }
  try {
    const buf = Buffer.alloc(MAX_PEM_FILE_BYTES + 1);
    const { bytesRead } = await fh.read(buf, 0, buf.length, 0);
    // SECURITY: a huge or endless file (a device, a FIFO) must not be read into memory whole.
    if (bytesRead > MAX_PEM_FILE_BYTES) throw new TlsMaterialError(`${what} ${file} is larger than ${MAX_PEM_FILE_BYTES} bytes`);
    return buf.subarray(0, bytesRead).toString('utf8');
  } finally {
    await fh.close();
  }
}

function certificatesOf(pem: string, file: string, what: string): X509Certificate[] {
  const blocks = pem.match(PEM_CERT) ?? [];
  if (blocks.length === 0) throw new TlsMaterialError(`${what} ${file} holds no PEM certificate (-----BEGIN CERTIFICATE-----)`);
  return blocks.map((b, i) => {
    try {
      return new X509Certificate(b);
    } catch (cause) {
      throw new TlsMaterialError(`${what} ${file}: certificate ${i + 1} does not parse`, { cause });
    }
  });
}

/** Read and check the TLS files: the key is RSA or EC and belongs to the first certificate. */
export async function loadTlsMaterial(files: TlsFiles, now: Date = new Date()): Promise<TlsMaterial> {
  const cert = await readPem(files.certificateFile, '[http_server] certificate');
  const key = await readPem(files.privateKeyFile, '[http_server] private_key');
  const chain = certificatesOf(cert, files.certificateFile, '[http_server] certificate');
  const leaf = chain[0]!;
  let keyObject: KeyObject;
  try {
    keyObject = createPrivateKey(key);
  } catch (cause) {
    // The message never carries the key text (node's parse errors do not either).
    throw new TlsMaterialError(`[http_server] private_key ${files.privateKeyFile} is not a PEM private key (an encrypted key needs its passphrase removed: openssl pkey -in KEY -out KEY.plain)`, { cause });
  }
  const type = keyObject.asymmetricKeyType;
  // SECURITY: only the key types TLS clients everywhere accept for a server certificate.
  if (type !== 'rsa' && type !== 'ec' && type !== 'rsa-pss') {
    throw new TlsMaterialError(`[http_server] private_key ${files.privateKeyFile} is a ${String(type)} key; use an RSA or EC (P-256/P-384) key`);
  }
  // SECURITY: a key that does not match the certificate would fail every handshake; refuse it at
  // start (or keep the old pair on reload) instead of serving a broken endpoint.
  if (!leaf.checkPrivateKey(keyObject)) {
    throw new TlsMaterialError(`[http_server] private_key ${files.privateKeyFile} does not belong to the certificate in ${files.certificateFile}`);
  }
  if (new Date(leaf.validTo).getTime() < now.getTime()) {
    throw new TlsMaterialError(`[http_server] certificate ${files.certificateFile} expired on ${leaf.validTo}`);
  }
  let ca: string | undefined;
  let clientCas = 0;
  if (files.clientCaFile !== undefined) {
    ca = await readPem(files.clientCaFile, '[admin] client_ca');
    const cas = certificatesOf(ca, files.clientCaFile, '[admin] client_ca');
    // SECURITY: only CA certificates may vouch for admin clients (a leaf listed by mistake would
    // otherwise be accepted as an issuer by some TLS stacks).
    for (const c of cas) if (!c.ca) throw new TlsMaterialError(`[admin] client_ca ${files.clientCaFile}: ${c.subject.replace(/\n/g, ', ')} is not a CA certificate`);
    clientCas = cas.length;
  }
  return {
    cert,
    key,
    ca,
    summary: { subject: leaf.subject.replace(/\n/g, ', '), notAfter: leaf.validTo, keyType: type === 'ec' ? `ec ${keyObject.asymmetricKeyDetails?.namedCurve ?? ''}`.trim() : type, fingerprint256: leaf.fingerprint256, clientCas },
  };
}
