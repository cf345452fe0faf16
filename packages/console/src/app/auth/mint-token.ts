import { base64urlEncode, utf8 } from './base64url.js';
import type { AdminKey } from './admin-key.js';

export interface AdminTokenClaims {
  /** The role configured for the identity (the KBS refuses a token naming another role). */
  readonly role: string;
  /** The identity name configured on the KBS (JWS `kid`). */
  readonly kid?: string;
  readonly sub?: string;
  readonly iss?: string;
  readonly aud?: string;
}

/** Short by design: a token sits in the page's memory only this long; the session mints the next. */
export const CONSOLE_TOKEN_LIFETIME_S = 300;

/**
 * Mint an admin JWT like `keyhold token issue`: header `{alg, typ: "JWT", kid?}`, claims
 * `{role, iat, exp, sub?, iss?, aud?}` (`exp` always set). WebCrypto's ECDSA signature is already
 * the IEEE P1363 r||s form JWS ES256 uses; Ed25519's is the raw 64 bytes of EdDSA.
 */
export async function mintAdminToken(
  key: AdminKey,
  claims: AdminTokenClaims,
  options: { readonly lifetimeS?: number; readonly nowMs?: number; readonly subtle?: SubtleCrypto } = {},
): Promise<{ token: string; exp: number }> {
  const lifetime = options.lifetimeS ?? CONSOLE_TOKEN_LIFETIME_S;
  if (!Number.isSafeInteger(lifetime) || lifetime < 1 || lifetime > 3600) throw new TypeError('lifetimeS must be 1..3600');
  if (!/^[A-Za-z0-9_.-]{1,64}$/.test(claims.role)) throw new TypeError('role must be letters, digits, _ . - (at most 64)');
  const iat = Math.floor((options.nowMs ?? Date.now()) / 1000);
  const exp = iat + lifetime;
  const header = { alg: key.alg, typ: 'JWT', ...(claims.kid === undefined ? {} : { kid: claims.kid }) };
  const payload = {
    role: claims.role,
    iat,
    exp,
    ...(claims.sub === undefined ? {} : { sub: claims.sub }),
    ...(claims.iss === undefined ? {} : { iss: claims.iss }),
    ...(claims.aud === undefined ? {} : { aud: claims.aud }),
  };
  const input = `${base64urlEncode(utf8(JSON.stringify(header)))}.${base64urlEncode(utf8(JSON.stringify(payload)))}`;
  const subtle = options.subtle ?? crypto.subtle;
  const algorithm = key.alg === 'EdDSA' ? { name: 'Ed25519' } : { name: 'ECDSA', hash: 'SHA-256' };
  const signature = new Uint8Array(await subtle.sign(algorithm, key.key, utf8(input)));
  return { token: `${input}.${base64urlEncode(signature)}`, exp };
}
