import { base64urlDecode } from './base64url.js';

export interface UnverifiedJwt {
  readonly header: Readonly<Record<string, unknown>>;
  readonly payload: Readonly<Record<string, unknown>>;
}

const MAX_TOKEN_CHARS = 64 * 1024;

/**
 * Decode a compact JWS WITHOUT verifying it: the page only reads `exp`/`role` of a pasted admin
 * token (the KBS verifies it on every call) and the claims of a pasted attestation token for a
 * policy test (the claims are sent, never the token). Throws Error on anything malformed.
 */
export function decodeUnverifiedJwt(token: string): UnverifiedJwt {
  const t = token.trim();
  if (t.length > MAX_TOKEN_CHARS) throw new Error('token is too long');
  const parts = t.split('.');
  if (parts.length !== 3) throw new Error('not a compact JWT (three dot-separated parts)');
  const part = (s: string, what: string): Record<string, unknown> => {
    let v: unknown;
    try {
      v = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(base64urlDecode(s)));
    } catch {
      throw new Error(`the JWT ${what} is not base64url JSON`);
    }
    if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new Error(`the JWT ${what} is not a JSON object`);
    return v as Record<string, unknown>;
  };
  return { header: part(parts[0] ?? '', 'header'), payload: part(parts[1] ?? '', 'payload') };
}

/** `exp` (seconds) of an admin token; the KBS requires one, so a token without is refused here too. */
export function expiryOf(token: string): number {
  const exp = decodeUnverifiedJwt(token).payload['exp'];
  if (typeof exp !== 'number' || !Number.isFinite(exp)) throw new Error('the token has no exp claim (the KBS requires one)');
  return exp;
}
