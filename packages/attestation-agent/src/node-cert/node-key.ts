/**
 * The node-certificate key: an EC P-256 key in `<dir>/key.pem` (PKCS#8 PEM, mode 0600) that the
 * daemon makes once and keeps across renewals. SPIRE's x509pop agent plugin reads it
 * (`private_key_path`) to answer the server's proof-of-possession challenge.
 *
 * Why the key is not rotated at every renewal: SPIRE reads `key.pem` and `cert.pem` as two files,
 * and two files cannot be replaced in one atomic step — a SPIRE agent reading between the two
 * renames would present a certificate its key does not match. With a stable key, a renewal replaces
 * one file (`cert.pem`) atomically. The key is bound into every attestation (its SPKI digest is in
 * the quoted runtime data), so a key copied off the node gains nothing once the node stops being
 * attested: certificates stop coming, and the last one expires within `[node_ca] ttl`. A ban with
 * `--delete-key-on-ban` deletes it; the next successful attestation makes a new one.
 */
import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { lstat, mkdir, readFile, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { writeFileAtomic } from '@keyhold/atomic-file';
import { AgentError } from '../errors.js';

export const NODE_KEY_FILE = 'key.pem';
/** Largest key file read (a P-256 PKCS#8 PEM is about 240 bytes). */
const MAX_KEY_FILE_BYTES = 16 * 1024;

export interface NodeKey {
  readonly privateKey: KeyObject;
  readonly publicKey: KeyObject;
  /** DER SubjectPublicKeyInfo. */
  readonly spkiDer: Uint8Array;
  /** Lower-case hex SHA-256 of `spkiDer`: what the attestation binds. */
  readonly spkiSha256: string;
  /** True when this call generated the key. */
  readonly created: boolean;
}

function filesError(message: string, cause?: unknown): AgentError {
  return new AgentError('NODE_CERT_FILES', message, cause !== undefined ? { cause } : undefined);
}

function describe(privateKey: KeyObject, created: boolean): NodeKey {
  const publicKey = createPublicKey(privateKey);
  const spkiDer = new Uint8Array(publicKey.export({ format: 'der', type: 'spki' }));
  return { privateKey, publicKey, spkiDer, spkiSha256: createHash('sha256').update(spkiDer).digest('hex'), created };
}

/** Make `dir` (0700) when it does not exist; refuse a path that is not a directory. */
export async function ensureNodeCertDir(dir: string): Promise<void> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const st = await lstat(dir);
  if (!st.isDirectory()) throw filesError(`--node-cert-dir ${dir} is not a directory`);
}

/** Load `<dir>/key.pem`, or make a new P-256 key there (0600, atomically) when there is none. */
export async function loadOrCreateNodeKey(dir: string): Promise<NodeKey> {
  const file = join(dir, NODE_KEY_FILE);
  let st;
  try {
    st = await lstat(file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw filesError(`cannot read ${file}`, err);
    const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    await writeFileAtomic(file, privateKey.export({ format: 'pem', type: 'pkcs8' }), 0o600);
    return describe(privateKey, true);
  }
  // SECURITY: a symlink would let whoever controls its target choose the node's key, or make the
  // daemon read a file it was not meant to (CWE-59); only a regular file is used.
  if (!st.isFile()) throw filesError(`${file} is not a regular file`);
  // SECURITY: a key readable by group or others may already be known to another user; refuse it
  // instead of binding it into the node's attestation (as ssh refuses such a private key).
  if ((st.mode & 0o077) !== 0) throw filesError(`${file} is accessible by group or others (mode ${(st.mode & 0o777).toString(8)}); chmod 600 it or delete it to get a new key`);
  if (st.size > MAX_KEY_FILE_BYTES) throw filesError(`${file} is too large to be a P-256 key`);
  let privateKey: KeyObject;
  try {
    privateKey = createPrivateKey(await readFile(file));
  } catch (err) {
    throw filesError(`${file} is not a PEM private key`, err);
  }
  // SECURITY: only the key type the certificate path is built for (EC P-256) is used.
  if (privateKey.asymmetricKeyType !== 'ec' || privateKey.asymmetricKeyDetails?.namedCurve !== 'prime256v1') {
    throw filesError(`${file} is not an EC P-256 key`);
  }
  return describe(privateKey, false);
}

/** Delete `<dir>/key.pem`; false when there was none. */
export async function deleteNodeKey(dir: string): Promise<boolean> {
  try {
    await unlink(join(dir, NODE_KEY_FILE));
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw filesError(`cannot delete ${join(dir, NODE_KEY_FILE)}`, err);
  }
}
