import { verify, type KeyObject } from 'node:crypto';
import { KbsError } from '../errors.js';
import { decodeBase64urlStrict } from './base64url.js';

export interface Es256VerifyOptions {
  /** The only key that may have signed the token (the header's own `jwk`/`kid` are never used). */
  publicKey: KeyObject;
  /** Required value of `iss`. */
  issuer: string;
  /** Claims that must be present (besides `iss`), e.g. `exp` and `iat`. */
  requiredClaims: readonly string[];
  /** The current time in milliseconds. */
  nowMs: number;
}

const strictUtf8 = new TextDecoder('utf-8', { fatal: true });

/**
 * Verify a compact ES256 JWT with synchronous node:crypto and return its claims.
 *
 * Guarantees, each as jose's `jwtVerify(token, key, { algorithms: ['ES256'], issuer, requiredClaims,
 * currentDate })` enforces them: exactly three base64url parts; a JSON-object protected header with
 * `alg` ES256; a valid ECDSA P-256 / SHA-256 R‖S signature by `publicKey`; a UTF-8 JSON-object
 * claims set; the required claims present; `iss` equal to `issuer`; numeric `iat`/`nbf`/`exp`; not
 * before `nbf`; `exp` strictly in the future (no clock tolerance). One deliberate difference: any
 * `crit` or `b64` header is refused (jose accepts `crit: ["b64"]` with `b64: true`); this KBS never
 * issues either.
 * Not checked: `aud`, `sub`, `jti`, `typ`, token age, and anything profile-specific (the caller's job).
 * Every failure is a `TOKEN_INVALID` KbsError; messages never include the token.
 */
export function verifyEs256Jwt(token: string, opts: Es256VerifyOptions): Record<string, unknown> {
  const parts = token.split('.');
  // SECURITY: a compact JWS has exactly three parts; a JWE (five) or a detached form is refused
  // (token-type confusion) (RFC 7515 §7.1).
  if (parts.length !== 3) throw invalid('token is not a compact JWS');
  const [headerB64, payloadB64, signatureB64] = parts as [string, string, string];
  const header = decodeJsonObject(headerB64, 'protected header');
  // SECURITY: only ES256. `none`, HMAC (with the public key as secret) and every other algorithm are
  // refused (algorithm confusion) (RFC 8725 §3.1).
  if (header['alg'] !== 'ES256') throw invalid('alg must be ES256');
  // SECURITY: no extension is understood, so a token that declares critical ones, or an unencoded
  // payload, is refused rather than misread (RFC 7515 §4.1.11, RFC 7797 §6).
  if (header['crit'] !== undefined || header['b64'] !== undefined) throw invalid('crit and b64 headers are not accepted');
  const signature = decodeBase64urlStrict(signatureB64);
  // SECURITY: ES256 signatures are exactly 64 bytes R‖S (RFC 7518 §3.4); anything else is forged or mangled.
  if (signature === undefined || signature.length !== 64) throw invalid('signature is malformed');
  // SECURITY: verified with this KBS's key only; a `jwk` or `kid` inside the header is ignored, so a
  // token signed by an attacker's key that carries that key is refused (key confusion).
  const ok = verify('sha256', Buffer.from(`${headerB64}.${payloadB64}`, 'latin1'), { key: opts.publicKey, dsaEncoding: 'ieee-p1363' }, signature);
  if (!ok) throw invalid('signature verification failed');

  const claims = decodeJsonObject(payloadB64, 'claims set');
  for (const name of new Set([...opts.requiredClaims, 'iss'])) {
    // SECURITY: a token without the claims that bound it (expiry, issue time, issuer) is refused (RFC 7519 §4.1).
    if (!Object.hasOwn(claims, name)) throw invalid(`missing required "${name}" claim`);
  }
  // SECURITY: tokens of another issuer are refused (RFC 7519 §4.1.1).
  if (claims['iss'] !== opts.issuer) throw invalid('unexpected "iss" claim value');
  const now = Math.floor(opts.nowMs / 1000);
  numericDate(claims, 'iat');
  const nbf = numericDate(claims, 'nbf');
  // SECURITY: a token is not valid before its `nbf` (RFC 7519 §4.1.5).
  if (nbf !== undefined && nbf > now) throw invalid('"nbf" claim timestamp check failed');
  const exp = numericDate(claims, 'exp');
  // SECURITY: an expired token opens nothing (RFC 7519 §4.1.4).
  if (exp !== undefined && exp <= now) throw invalid('"exp" claim timestamp check failed');
  return claims;
}

function decodeJsonObject(b64: string, what: string): Record<string, unknown> {
  const bytes = decodeBase64urlStrict(b64);
  let parsed: unknown;
  try {
    // SECURITY: strict base64url, strict UTF-8 and JSON; ill-formed input is refused, not repaired (RFC 7515 §5.2).
    if (bytes === undefined) throw new Error('not base64url');
    parsed = JSON.parse(strictUtf8.decode(bytes));
  } catch (cause) {
    throw invalid(`${what} is not valid base64url JSON`, cause);
  }
  // SECURITY: headers and claims sets are JSON objects; arrays, strings and null are refused (RFC 7519 §7.2).
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) throw invalid(`${what} must be a JSON object`);
  return parsed as Record<string, unknown>;
}

function numericDate(claims: Record<string, unknown>, name: string): number | undefined {
  const value = claims[name];
  if (value === undefined) return undefined;
  // SECURITY: NumericDate claims must be numbers; a string `exp` would compare wrongly (RFC 7519 §2).
  if (typeof value !== 'number') throw invalid(`"${name}" claim must be a number`);
  return value;
}

function invalid(message: string, cause?: unknown): KbsError {
  return new KbsError('TOKEN_INVALID', message, cause === undefined ? undefined : { cause });
}
