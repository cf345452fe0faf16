import { open } from 'node:fs/promises';
import { UsageError } from './errors.js';

const MAX_CA_BYTES = 1024 * 1024;

/**
 * The PEM CA bundle named by `--cert-file` (kbs-client's flag: the root that signed an https KBS's
 * certificate), read once at start. Refuses files that hold no certificate — a private key or a
 * DER file given by mistake would otherwise surface later as an opaque TLS error.
 */
export async function readCaFile(file: string): Promise<string> {
  const fh = await open(file, 'r');
  let bytes: Buffer;
  try {
    // SECURITY: bounded read (a wrong path such as /dev/zero must not exhaust memory).
    const buf = Buffer.alloc(MAX_CA_BYTES + 1);
    const { bytesRead } = await fh.read(buf, 0, buf.length, 0);
    if (bytesRead > MAX_CA_BYTES) throw new UsageError(`--cert-file ${file} is larger than ${MAX_CA_BYTES} bytes`);
    bytes = buf.subarray(0, bytesRead);
  } finally {
    await fh.close();
  }
  const pem = bytes.toString('utf8');
  if (!pem.includes('-----BEGIN CERTIFICATE-----')) throw new UsageError(`--cert-file ${file} holds no PEM certificate`, { hint: 'give the CA certificate (PEM) that signed the KBS certificate' });
  return pem;
}
