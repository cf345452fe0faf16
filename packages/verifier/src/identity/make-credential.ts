/**
 * TPM2_MakeCredential computed in software (TPM 2.0 Part 1 §24 "Credential Protection",
 * Part 3 §12.6, Part 1 Annex B.10.3 / C.6.4 for RSA and ECC secret sharing).
 *
 * The output can only be opened by TPM2_ActivateCredential on the TPM holding the EK's private
 * key, and only when the object named by `objectName` is loaded in that same TPM. That is what
 * proves the AK shares a TPM with the EK. This function checks its inputs are usable (the EK is a
 * restricted decryption key with an AES-CFB symmetric, the name is well formed, the credential
 * fits) but does NOT decide whether the EK is trusted: check the EK certificate or allowlist.
 */
import { createCipheriv, createHmac, diffieHellman, generateKeyPairSync, publicEncrypt, randomBytes, constants } from 'node:crypto';
import type { TpmPublic } from '../tpm/public.js';
import { IdentityError } from './errors.js';
import { concatBytes, tpm2b } from './internal/byte-reader.js';
import { kdfa, kdfe } from './internal/kdf.js';
import { hashAlgId, hashInfo } from './internal/tpm-alg.js';
import { tpmPublicToKeyObject } from './spki.js';

export interface MakeCredentialResult {
  /** TPM2B_ID_OBJECT: u16 size || TPM2B_DIGEST integrityHMAC || encIdentity. */
  readonly credentialBlob: Uint8Array;
  /** TPM2B_ENCRYPTED_SECRET: the seed encrypted to the EK (RSA-OAEP ciphertext or ECC point). */
  readonly secret: Uint8Array;
}

const invalid = (msg: string): IdentityError => new IdentityError('CREDENTIAL_INPUT_INVALID', `MakeCredential: ${msg}`);

const JWK_CRV: Partial<Record<string, { curve: string; size: number }>> = {
  NIST_P256: { curve: 'prime256v1', size: 32 },
  NIST_P384: { curve: 'secp384r1', size: 48 },
  NIST_P521: { curve: 'secp521r1', size: 66 },
};

function leftPad(b: Uint8Array, size: number): Uint8Array {
  if (b.length >= size) return b;
  const out = new Uint8Array(size);
  out.set(b, size - b.length);
  return out;
}

/**
 * @param ekPublic decoded EK public area (as the TPM reported it)
 * @param objectName the AK's name (nameAlg || digest)
 * @param credential the secret the TPM will release, at most the EK nameAlg's digest size
 */
export function makeCredential(ekPublic: TpmPublic, objectName: Uint8Array, credential: Uint8Array): MakeCredentialResult {
  const a = ekPublic.objectAttributes;
  // SECURITY: the TPM only activates with a restricted decryption (storage) key; any other key
  // could be used to decrypt the seed outside the credential-protection rules (Part 3 §12.6.1,
  // TPM_RC_TYPE/TPM_RC_ATTRIBUTES).
  if (!a.restricted || !a.decrypt || a.sign) throw invalid('EK is not a restricted decryption key');
  const sym = ekPublic.parameters.symmetric;
  // SECURITY: credential protection uses the EK's symmetric algorithm in CFB mode; anything else
  // would produce a blob the TPM cannot open or that is weaker than its template (Part 1 §24.4).
  if (sym.algorithm !== 'aes' || sym.mode !== 'cfb') throw invalid('EK symmetric must be AES-CFB');
  const nameHash = hashInfo(hashAlgId(ekPublic.nameAlg));
  if (nameHash === undefined || nameHash.name === 'sm3_256') throw invalid('EK nameAlg unsupported');
  const nameAlg = objectName.length >= 2 ? hashInfo(((objectName[0] as number) << 8) | (objectName[1] as number)) : undefined;
  // SECURITY: the name must be nameAlg || digest of exactly that size, so the TPM compares it
  // with a real loaded object's name and nothing else (Part 1 §16).
  if (nameAlg === undefined || objectName.length !== 2 + nameAlg.size) throw invalid('object name is malformed');
  // SECURITY: the credential must fit the EK nameAlg digest size, as the TPM enforces (Part 3 §12.6, TPM_RC_SIZE).
  if (credential.length === 0 || credential.length > nameHash.size) throw invalid(`credential must be 1..${nameHash.size} bytes`);

  const hash = nameHash.name;
  const ekKey = tpmPublicToKeyObject(ekPublic);
  let seed: Uint8Array;
  let encryptedSeed: Uint8Array;
  if (ekPublic.type === 'rsa') {
    seed = new Uint8Array(randomBytes(nameHash.size));
    encryptedSeed = new Uint8Array(
      publicEncrypt({ key: ekKey, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: hash, oaepLabel: Buffer.from('IDENTITY\0', 'latin1') }, seed),
    );
  } else {
    const c = JWK_CRV[ekPublic.parameters.curve];
    if (c === undefined) throw invalid(`curve ${ekPublic.parameters.curve} unsupported`);
    const eph = generateKeyPairSync('ec', { namedCurve: c.curve });
    const jwk = eph.publicKey.export({ format: 'jwk' });
    const ephX = new Uint8Array(Buffer.from(jwk.x ?? '', 'base64url'));
    const ephY = new Uint8Array(Buffer.from(jwk.y ?? '', 'base64url'));
    const z = leftPad(new Uint8Array(diffieHellman({ privateKey: eph.privateKey, publicKey: ekKey })), c.size);
    seed = kdfe(hash, z, 'IDENTITY', leftPad(ephX, c.size), leftPad(ekPublic.unique.x, c.size), nameHash.size * 8);
    encryptedSeed = concatBytes(tpm2b(leftPad(ephX, c.size)), tpm2b(leftPad(ephY, c.size)));
  }

  const symKey = kdfa(hash, seed, 'STORAGE', objectName, new Uint8Array(0), sym.keyBits);
  const cipher = createCipheriv(`aes-${sym.keyBits}-cfb`, symKey, Buffer.alloc(16));
  const encIdentity = new Uint8Array(Buffer.concat([cipher.update(tpm2b(credential)), cipher.final()]));
  const hmacKey = kdfa(hash, seed, 'INTEGRITY', new Uint8Array(0), new Uint8Array(0), nameHash.size * 8);
  const integrity = new Uint8Array(createHmac(hash, hmacKey).update(encIdentity).update(objectName).digest());
  return {
    credentialBlob: tpm2b(concatBytes(tpm2b(integrity), encIdentity)),
    secret: tpm2b(encryptedSeed),
  };
}
