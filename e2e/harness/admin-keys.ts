import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { SignJWT } from 'jose';

/** An owner's Ed25519 admin key pair, the public half written where the KBS can read it. */
export interface AdminKeys {
  privateKey: KeyObject;
  publicKeyFile: string;
  /** A signed admin JWT (EdDSA) valid for `lifetimeS` (negative: already expired). */
  token(opts?: { lifetimeS?: number; key?: KeyObject; sub?: string }): Promise<string>;
}

export async function createAdminKeys(dir: string): Promise<AdminKeys> {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  const publicKeyFile = join(dir, 'admin.pub.pem');
  await writeFile(publicKeyFile, publicKey.export({ format: 'pem', type: 'spki' }));
  return {
    privateKey,
    publicKeyFile,
    async token({ lifetimeS = 300, key = privateKey, sub = 'owner' } = {}) {
      const now = Math.floor(Date.now() / 1000);
      return new SignJWT({ role: 'admin' })
        .setProtectedHeader({ alg: 'EdDSA' })
        .setSubject(sub)
        .setIssuedAt(now - 5)
        .setExpirationTime(now + lifetimeS)
        .sign(key);
    },
  };
}
