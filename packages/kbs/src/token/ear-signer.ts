import { createPublicKey, type KeyObject } from 'node:crypto';
import { calculateJwkThumbprint, exportJWK, type JWK, type JWTPayload } from 'jose';
import { KbsError } from '../errors.js';
import { Es256CompactSigner } from '../hot-path/es256-sign.js';
import { verifyEs256Jwt } from '../hot-path/es256-verify.js';

export const EAR_PROFILE = 'tag:github.com,2024:confidential-containers/Trustee';
export const EAR_ALG = 'ES256';

export interface EarSignerOptions {
  privateKey: KeyObject;
  issuer: string;
  lifetimeMs: number;
  now?: () => number;
}

/**
 * Issues and checks Keyhold's EAR attestation tokens (ES256, signing JWK in the header). Signing and
 * verification run on the hot path with synchronous node:crypto (src/hot-path), proved
 * byte-compatible with jose's `SignJWT`/`jwtVerify`; jose makes the JWKS and the thumbprint.
 */
export class EarSigner {
  readonly #privateKey: KeyObject;
  readonly #publicKey: KeyObject;
  readonly #issuer: string;
  readonly #lifetimeMs: number;
  readonly #now: () => number;
  #publicJwk: JWK | undefined;
  #jws: Es256CompactSigner | undefined;

  private constructor(opts: EarSignerOptions) {
    if (opts.privateKey.asymmetricKeyType !== 'ec' || opts.privateKey.asymmetricKeyDetails?.namedCurve !== 'prime256v1') {
      throw new TypeError('the token signing key must be an EC P-256 private key (ES256)');
    }
    this.#privateKey = opts.privateKey;
    this.#publicKey = createPublicKey(opts.privateKey);
    this.#issuer = opts.issuer;
    this.#lifetimeMs = opts.lifetimeMs;
    this.#now = opts.now ?? Date.now;
  }

  static async create(opts: EarSignerOptions): Promise<EarSigner> {
    const s = new EarSigner(opts);
    const jwk = await exportJWK(s.#publicKey);
    s.#publicJwk = { ...jwk, alg: EAR_ALG, use: 'sig', kid: await calculateJwkThumbprint(jwk) };
    const pub = s.#publicJwk;
    // The header jose's SignJWT wrote: alg, typ, the public JWK (for Trustee clients), kid.
    s.#jws = new Es256CompactSigner(s.#privateKey, { alg: EAR_ALG, typ: 'JWT', jwk: { kty: pub.kty, crv: pub.crv, x: pub.x, y: pub.y, alg: EAR_ALG }, kid: pub.kid });
    return s;
  }

  get lifetimeMs(): number {
    return this.#lifetimeMs;
  }

  /** The JWKS that relying parties use to check Keyhold tokens. */
  jwks(): { keys: JWK[] } {
    return { keys: [this.#jwk()] };
  }

  async sign(claims: JWTPayload): Promise<string> {
    if (this.#jws === undefined) throw new TypeError('EarSigner used before create()');
    const nowS = Math.floor(this.#now() / 1000);
    // Claim order as SignJWT's setIssuedAt / setExpirationTime / setIssuer produce it.
    return this.#jws.sign({ ...claims, iat: nowS, exp: nowS + Math.ceil(this.#lifetimeMs / 1000), iss: this.#issuer });
  }

  /**
   * Verify a bearer token that a client presents to fetch a resource.
   * Guarantees: ES256 signature by *this* KBS's key (never a key named inside the token),
   * `exp` present and not passed, issuer equal to this KBS, EAR profile.
   */
  async verify(token: string): Promise<JWTPayload> {
    try {
      // SECURITY: verify with our own key only, and only ES256; the header's embedded `jwk` is
      // ignored, so a token signed by an attacker's key (and carrying it) is refused (key confusion).
      const payload: JWTPayload = verifyEs256Jwt(token, { publicKey: this.#publicKey, issuer: this.#issuer, requiredClaims: ['exp', 'iat'], nowMs: this.#now() });
      // SECURITY: only EAR attestation tokens unlock resources, not other JWTs this key might sign.
      if (payload['eat_profile'] !== EAR_PROFILE) throw new Error('not an EAR token');
      return payload;
    } catch (cause) {
      throw new KbsError('TOKEN_INVALID', 'attestation token is invalid or expired', { cause });
    }
  }

  #jwk(): JWK {
    if (this.#publicJwk === undefined) throw new TypeError('EarSigner used before create()');
    return this.#publicJwk;
  }
}
