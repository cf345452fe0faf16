/**
 * TPM2_ActivateCredential in software, for the software TPM only (RSA EK, AES-128-CFB, SHA-256 as in
 * EK template L-1). TPM 2.0 Part 1, 24 (Credential Protection) and Part 1, 11.4.10.2 (KDFa).
 */
import { constants, createDecipheriv, createHmac, privateDecrypt, timingSafeEqual, type KeyObject } from 'node:crypto';
import { TpmError } from '../../errors.js';
import { TpmReader } from './tpm-bytes.js';

/** KDFa (SP 800-108 counter mode, HMAC-SHA-256), label NUL-terminated. */
export function kdfaSha256(key: Uint8Array, label: string, contextU: Uint8Array, contextV: Uint8Array, bits: number): Buffer {
  const bytes = Math.ceil(bits / 8);
  const parts: Buffer[] = [];
  const lbl = Buffer.from(`${label}\0`, 'latin1');
  const bitsBuf = Buffer.alloc(4);
  bitsBuf.writeUInt32BE(bits);
  for (let i = 1, n = 0; n < bytes; i++) {
    const counter = Buffer.alloc(4);
    counter.writeUInt32BE(i);
    const block = createHmac('sha256', key).update(counter).update(lbl).update(contextU).update(contextV).update(bitsBuf).digest();
    parts.push(block);
    n += block.length;
  }
  return Buffer.concat(parts).subarray(0, bytes);
}

/**
 * Recover the credential a verifier protected for `akName` under the RSA EK `ekPrivate`. Malformed
 * input is TPM_COMMAND_FAILED, as the FFI device reports it.
 */
export function activateCredentialRsa(
  ekPrivate: KeyObject,
  akName: Uint8Array,
  credentialBlob: Uint8Array,
  encryptedSecret: Uint8Array,
): Uint8Array {
  try {
    return activate(ekPrivate, akName, credentialBlob, encryptedSecret);
  } catch (err) {
    if (err instanceof TpmError && err.code === 'TPM_BAD_RESPONSE') {
      throw new TpmError('TPM_COMMAND_FAILED', 'credential blob or secret is malformed', { cause: err });
    }
    throw err;
  }
}

function activate(
  ekPrivate: KeyObject,
  akName: Uint8Array,
  credentialBlob: Uint8Array,
  encryptedSecret: Uint8Array,
): Uint8Array {
  const secretReader = new TpmReader(encryptedSecret, 'TPM2B_ENCRYPTED_SECRET');
  const encSeed = secretReader.tpm2b(512);
  secretReader.end();
  let seed: Buffer;
  try {
    seed = privateDecrypt(
      { key: ekPrivate, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: 'sha256', oaepLabel: Buffer.from('IDENTITY\0', 'latin1') },
      encSeed,
    );
  } catch (err) {
    // SECURITY: a seed not encrypted to this EK is refused like TPM_RC_VALUE (TPM 2.0 Part 1, B.10.4)
    throw new TpmError('TPM_COMMAND_FAILED', 'credential seed does not decrypt with the EK', { cause: err });
  }
  const outer = new TpmReader(credentialBlob, 'TPM2B_ID_OBJECT');
  const idObject = outer.tpm2b(1024);
  outer.end();
  const r = new TpmReader(idObject, 'TPMS_ID_OBJECT');
  const integrity = r.tpm2b(64);
  const encIdentity = r.bytes(r.remaining);
  const hmacKey = kdfaSha256(seed, 'INTEGRITY', new Uint8Array(0), new Uint8Array(0), 256);
  const expected = createHmac('sha256', hmacKey).update(encIdentity).update(akName).digest();
  // SECURITY: the HMAC binds the credential to this AK's name; a blob for another key or a tampered blob fails (TPM 2.0 Part 1, 24.5)
  if (integrity.length !== expected.length || !timingSafeEqual(integrity, expected)) {
    throw new TpmError('TPM_COMMAND_FAILED', 'credential integrity check failed');
  }
  const symKey = kdfaSha256(seed, 'STORAGE', akName, new Uint8Array(0), 128);
  const decipher = createDecipheriv('aes-128-cfb', symKey, Buffer.alloc(16));
  const plain = Buffer.concat([decipher.update(encIdentity), decipher.final()]);
  const pr = new TpmReader(plain, 'TPM2B_DIGEST');
  const credential = pr.tpm2b(64);
  pr.end();
  return new Uint8Array(credential);
}
