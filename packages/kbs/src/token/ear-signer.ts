import { createPublicKey, type KeyObject } from 'node:crypto';
import { SignJWT, calculateJwkThumbprint, exportJWK, jwtVerify, type JWK, type JWTPayload } from 'jose';
import { KbsError } from '../errors.js';

export const EAR_PROFILE = 'tag:github.com,2024:confidential-containers/Trustee';
export const EAR_ALG = 'ES256';

export interface EarSignerOptions {
  privateKey: KeyObject;
  issuer: string;
  lifetimeMs: number;
  now?: () => number;
}

/** Issues and checks Keyhold's EAR attestation tokens (ES256, signing JWK in the header). */
export class EarSigner {
  readonly #privateKey: KeyObject;
  readonly #publicKey: KeyObject;
  readonly #issuer: string;
  readonly #lifetimeMs: number;
  readonly #now: () => number;
  #publicJwk: JWK | undefined;

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
    const nowS = Math.floor(this.#now() / 1000);
    const jwk = this.#jwk();
    return new SignJWT(claims)
      .setProtectedHeader({ alg: EAR_ALG, typ: 'JWT', jwk: { kty: jwk.kty!, crv: jwk.crv!, x: jwk.x!, y: jwk.y!, alg: EAR_ALG }, kid: jwk.kid! })
      .setIssuedAt(nowS)
      .setExpirationTime(nowS + Math.ceil(this.#lifetimeMs / 1000))
      .setIssuer(this.#issuer)
      .sign(this.#privateKey);
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
      const { payload } = await jwtVerify(token, this.#publicKey, {
        algorithms: [EAR_ALG],
        issuer: this.#issuer,
        requiredClaims: ['exp', 'iat'],
        currentDate: new Date(this.#now()),
      });
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
