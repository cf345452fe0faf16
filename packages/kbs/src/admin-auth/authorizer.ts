import { createPublicKey, type KeyObject } from 'node:crypto';
import { decodeProtectedHeader, errors as joseErrors, jwtVerify, type JWTPayload } from 'jose';
import { AdminAuthError } from './errors.js';
import { DEFAULT_ADMIN_ROLES, checkAcl, compileRoles, type AdminRoleConfig, type CompiledRole } from './acl.js';

/** An admin allowed to call the admin API: its public key and its role. */
export interface AdminIdentityConfig {
  /** Also the JWT `kid` that selects this identity's key (optional in tokens). */
  readonly name: string;
  /** SPKI PEM of an Ed25519 (tokens signed EdDSA) or P-256 (ES256) key. */
  readonly publicKeyPem: string;
  readonly role: string;
}

export interface AdminAuthConfig {
  readonly identities: readonly AdminIdentityConfig[];
  /** Role name → ACL. Defaults to DEFAULT_ADMIN_ROLES. */
  readonly roles?: Readonly<Record<string, AdminRoleConfig>>;
  /** Required `iss` when set. */
  readonly issuer?: string;
  /** Required `aud` when set. */
  readonly audience?: string;
  /** Allowed clock skew for exp/nbf/iat, default 30 s. */
  readonly clockToleranceSec?: number;
  /**
   * Longest token lifetime accepted, default 24 h: `exp - iat` when the token has `iat`, else
   * `exp - now` (each with the clock skew allowed on top).
   */
  readonly maxTokenLifetimeSec?: number;
  /** INSECURE: accept every admin request without a token. Only for local experiments. */
  readonly insecureAllowAll?: boolean;
  /** Clock, for tests. */
  readonly now?: () => Date;
}

export interface AdminAuthRequest {
  readonly authorizationHeader: string | undefined;
  readonly method: string;
  /** The request path without query string, e.g. `/kbs/v0/resource/repo/key/1`. */
  readonly path: string;
}

export interface AdminPrincipal {
  /** The configured identity name (never the token itself). */
  readonly identity: string;
  readonly role: string;
  /** Repositories the role is limited to; undefined when unlimited (routes filter listings by it). */
  readonly repositories: readonly string[] | undefined;
  /** The token's `exp` in milliseconds; undefined for the insecure allow-all mode. */
  readonly expiresAtMs?: number;
  /** Whether the role may call `method path` (the ACL check `authorize` applies). */
  readonly allows: (method: string, path: string) => boolean;
}

export interface AdminAuthorizer {
  /** Resolves the caller or throws AdminAuthError (MISSING / INVALID / EXPIRED / FORBIDDEN). */
  authorize(request: AdminAuthRequest): Promise<AdminPrincipal>;
  /** Set when the configuration is insecure; the caller logs it at start. */
  readonly warning: string | undefined;
}

type AdminAlg = 'EdDSA' | 'ES256';
interface Identity {
  readonly name: string;
  readonly alg: AdminAlg;
  readonly key: KeyObject;
  readonly role: CompiledRole;
}

const MAX_TOKEN_CHARS = 8192;
export const DEFAULT_MAX_TOKEN_LIFETIME_SEC = 24 * 3600;
export const DEFAULT_CLOCK_TOLERANCE_SEC = 30;

/** `exp` and `iat` as jose verified them (numbers when present); refuses over-long and future-issued tokens. */
function checkLifetime(payload: JWTPayload, nowSec: number, maxLifetime: number, tolerance: number): void {
  const exp = payload.exp as number;
  const iat = typeof payload.iat === 'number' ? payload.iat : undefined;
  // SECURITY: a token "issued" in the future would stretch its lifetime past the limit below, and
  // means a wrong clock on the issuer or a forged timeline (RFC 7519 §4.1.6, RFC 8725 §3.10).
  if (iat !== undefined && iat > nowSec + tolerance) {
    throw new AdminAuthError('ADMIN_TOKEN_INVALID', `admin token iat is ${Math.round(iat - nowSec)} s in the future (clock skew allowed: ${tolerance} s)`);
  }
  const lifetime = iat !== undefined ? exp - iat : exp - nowSec;
  // SECURITY: long-lived admin tokens are refused, bounding the damage of a leaked one (RFC 8725 §3.10).
  if (lifetime > maxLifetime + tolerance) {
    throw new AdminAuthError(
      'ADMIN_TOKEN_INVALID',
      `admin token lifetime (${iat !== undefined ? 'exp - iat' : 'exp - now'} = ${Math.round(lifetime)} s) exceeds this KBS's maximum of ${maxLifetime} s ([admin] max_token_lifetime_s); issue a shorter one: keyhold token issue --lifetime 1h`,
    );
  }
}
const BEARER = /^Bearer +([A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*)$/i;

function algOf(name: string, key: KeyObject): AdminAlg {
  if (key.asymmetricKeyType === 'ed25519') return 'EdDSA';
  if (key.asymmetricKeyType === 'ec' && key.asymmetricKeyDetails?.namedCurve === 'prime256v1') return 'ES256';
  throw new TypeError(`admin identity ${name}: the key must be Ed25519 or EC P-256`);
}

/**
 * Build the admin authorizer from configuration (validated here: bad keys, unknown roles or bad
 * ACL regexes throw TypeError at start).
 *
 * `authorize` guarantees, in order:
 * - a Bearer token is present and at most 8 KiB (else ADMIN_TOKEN_MISSING / INVALID);
 * - its `alg` is EdDSA or ES256 — `none`, HMAC and RSA are refused before any key is tried;
 * - its signature verifies with a configured identity's key of that algorithm (the `kid`, if
 *   present, must name the identity);
 * - `exp` is present and not past (ADMIN_TOKEN_EXPIRED), `nbf` if present is reached, and `iss` /
 *   `aud` equal the configured values when configured; `iat`, if present, is not in the future;
 *   the lifetime (`exp - iat`, or `exp - now` without `iat`) is within maxTokenLifetimeSec (24 h by
 *   default) — every time comparison allows clockToleranceSec (30 s by default) of skew;
 * - a `role` claim, if present, equals the identity's configured role;
 * - the role's ACL allows the method and path, and its repository limit, if any, covers the path
 *   (else ADMIN_FORBIDDEN).
 * It does not check revocation (no token ids are tracked) nor bind the token to a request.
 */
export function createAdminAuthorizer(config: AdminAuthConfig): AdminAuthorizer {
  const roles = compileRoles(config.roles ?? DEFAULT_ADMIN_ROLES);
  const now = config.now ?? (() => new Date());
  const clockTolerance = config.clockToleranceSec ?? DEFAULT_CLOCK_TOLERANCE_SEC;
  const maxLifetime = config.maxTokenLifetimeSec ?? DEFAULT_MAX_TOKEN_LIFETIME_SEC;
  if (!Number.isSafeInteger(clockTolerance) || clockTolerance < 0) throw new TypeError('clockToleranceSec must be a non-negative integer');
  if (!Number.isSafeInteger(maxLifetime) || maxLifetime < 1) throw new TypeError('maxTokenLifetimeSec must be a positive integer');
  if (config.insecureAllowAll === true) {
    const admin = roles.get('admin');
    return {
      warning: 'INSECURE: admin authorization is disabled (insecureAllowAll); every admin request is accepted without a token',
      async authorize() {
        return { identity: 'insecure-allow-all', role: 'admin', repositories: admin?.repositories === undefined ? undefined : [...admin.repositories], allows: () => true };
      },
    };
  }
  const names = new Set<string>();
  const identities: Identity[] = config.identities.map((id) => {
    if (names.has(id.name)) throw new TypeError(`admin identity ${id.name} is configured twice`);
    names.add(id.name);
    const role = roles.get(id.role);
    if (role === undefined) throw new TypeError(`admin identity ${id.name}: unknown role ${id.role}`);
    let key: KeyObject;
    try {
      key = createPublicKey(id.publicKeyPem);
    } catch (cause) {
      throw new TypeError(`admin identity ${id.name}: publicKeyPem is not a public key`, { cause });
    }
    return { name: id.name, alg: algOf(id.name, key), key, role };
  });

  async function verify(token: string): Promise<{ identity: Identity; payload: JWTPayload }> {
    let header: ReturnType<typeof decodeProtectedHeader>;
    try {
      header = decodeProtectedHeader(token);
    } catch (cause) {
      throw new AdminAuthError('ADMIN_TOKEN_INVALID', 'admin token is not a JWS', { cause });
    }
    // SECURITY: only asymmetric EdDSA/ES256 are accepted, so `alg: none` and HMAC tokens keyed with
    // a public key cannot pass (algorithm confusion, RFC 8725 §2.1, §3.1).
    if (header.alg !== 'EdDSA' && header.alg !== 'ES256') throw new AdminAuthError('ADMIN_TOKEN_INVALID', 'admin token algorithm must be EdDSA or ES256');
    const alg = header.alg;
    const candidates = identities.filter((i) => i.alg === alg && (header.kid === undefined || header.kid === i.name));
    for (const identity of candidates) {
      try {
        const { payload } = await jwtVerify(token, identity.key, {
          algorithms: [alg],
          requiredClaims: ['exp'],
          clockTolerance,
          currentDate: now(),
          ...(config.issuer === undefined ? {} : { issuer: config.issuer }),
          ...(config.audience === undefined ? {} : { audience: config.audience }),
        });
        return { identity, payload };
      } catch (err) {
        if (err instanceof joseErrors.JWSSignatureVerificationFailed) continue;
        // SECURITY: jose checks the signature before claims, so "expired" is only reported for a
        // token this identity really signed; exp/nbf/iss/aud failures are refused (RFC 7519 §4.1).
        if (err instanceof joseErrors.JWTExpired) {
          throw new AdminAuthError('ADMIN_TOKEN_EXPIRED', 'admin token has expired; issue a new one: keyhold token issue --key ADMIN_KEY.pem --role ROLE --lifetime 1h', { cause: err });
        }
        throw new AdminAuthError('ADMIN_TOKEN_INVALID', `admin token refused: ${err instanceof joseErrors.JOSEError ? err.code : 'malformed'}`, { cause: err });
      }
    }
    // SECURITY: a token no configured key signed is refused (forged or foreign token).
    throw new AdminAuthError('ADMIN_TOKEN_INVALID', 'admin token is not signed by a configured admin key');
  }

  return {
    warning: undefined,
    async authorize(request) {
      const header = request.authorizationHeader;
      if (header === undefined || header.trim() === '') throw new AdminAuthError('ADMIN_TOKEN_MISSING', 'admin endpoints need Authorization: Bearer <admin token>');
      // SECURITY: size bounded before decoding (resource exhaustion with huge headers).
      if (header.length > MAX_TOKEN_CHARS) throw new AdminAuthError('ADMIN_TOKEN_INVALID', 'admin token too long');
      const match = BEARER.exec(header);
      if (match?.[1] === undefined) throw new AdminAuthError('ADMIN_TOKEN_INVALID', 'Authorization must be a Bearer compact JWS');
      const { identity, payload } = await verify(match[1]);
      checkLifetime(payload, now().getTime() / 1000, maxLifetime, clockTolerance);
      // SECURITY: a token cannot raise its holder's privileges by naming another role.
      if (payload.role !== undefined && payload.role !== identity.role.name) {
        throw new AdminAuthError('ADMIN_FORBIDDEN', `admin token asks for a role that identity ${identity.name} does not have`);
      }
      checkAcl(identity.role, request.method, request.path);
      const role = identity.role;
      return {
        identity: identity.name,
        role: role.name,
        repositories: role.repositories === undefined ? undefined : [...role.repositories],
        ...(typeof payload.exp === 'number' ? { expiresAtMs: payload.exp * 1000 } : {}),
        allows: (method, path) => {
          try {
            checkAcl(role, method, path);
            return true;
          } catch {
            return false;
          }
        },
      };
    },
  };
}
