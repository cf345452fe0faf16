import type { AdminKey } from './admin-key.js';
import { expiryOf } from './decode-unverified.js';
import { mintAdminToken, type AdminTokenClaims } from './mint-token.js';

/** Renew a minted token this long before it expires. */
const RENEW_BEFORE_S = 60;

export type SignOutReason = 'signed-out' | 'expired' | 'unauthorized';

/**
 * The signed-in owner, in memory only (never localStorage, sessionStorage, cookies or the URL).
 * A key session mints short-lived admin tokens on demand with the non-extractable key; a pasted
 * token session ends when that token expires.
 */
export class AdminSession {
  readonly #key: AdminKey | undefined;
  readonly #claims: AdminTokenClaims | undefined;
  #token: string | undefined;
  #exp = 0;
  #minting: Promise<string> | undefined;
  readonly role: string | undefined;
  readonly identity: string | undefined;
  readonly repositories: readonly string[];
  readonly #now: () => number;

  private constructor(init: { key?: AdminKey; claims?: AdminTokenClaims; token?: string; exp?: number; role?: string; identity?: string; repositories: readonly string[]; now?: () => number }) {
    this.#key = init.key;
    this.#claims = init.claims;
    this.#token = init.token;
    this.#exp = init.exp ?? 0;
    this.role = init.role;
    this.identity = init.identity;
    this.repositories = init.repositories;
    this.#now = init.now ?? Date.now;
  }

  static withKey(key: AdminKey, claims: AdminTokenClaims, repositories: readonly string[], now?: () => number): AdminSession {
    return new AdminSession({ key, claims, role: claims.role, ...(claims.kid !== undefined ? { identity: claims.kid } : {}), repositories, ...(now ? { now } : {}) });
  }

  /** A pasted admin token: refused here when it has no `exp` or has already expired. */
  static withToken(token: string, repositories: readonly string[], now: () => number = Date.now): AdminSession {
    const t = token.trim();
    const exp = expiryOf(t);
    if (exp * 1000 <= now()) throw new Error('this token has expired');
    const [, payload] = t.split('.');
    let role: string | undefined;
    try {
      const p = JSON.parse(atob((payload ?? '').replace(/-/g, '+').replace(/_/g, '/'))) as { role?: unknown };
      if (typeof p.role === 'string') role = p.role;
    } catch {
      role = undefined;
    }
    return new AdminSession({ token: t, exp, ...(role !== undefined ? { role } : {}), repositories, now });
  }

  get kind(): 'key' | 'token' {
    return this.#key === undefined ? 'token' : 'key';
  }

  /** Milliseconds until a pasted token expires (Infinity for key sessions, which renew). */
  msUntilExpiry(): number {
    return this.#key === undefined ? this.#exp * 1000 - this.#now() : Infinity;
  }

  /** The token for the next call: renewed when close to expiry (key), or undefined once expired (pasted). */
  async token(): Promise<string | undefined> {
    const nowS = this.#now() / 1000;
    if (this.#key === undefined || this.#claims === undefined) return this.#exp > nowS ? this.#token : undefined;
    if (this.#token !== undefined && this.#exp - RENEW_BEFORE_S > nowS) return this.#token;
    this.#minting ??= mintAdminToken(this.#key, this.#claims, { nowMs: this.#now() })
      .then(({ token, exp }) => {
        this.#token = token;
        this.#exp = exp;
        return token;
      })
      .finally(() => {
        this.#minting = undefined;
      });
    return this.#minting;
  }

  /** Forget the token (the key object goes with the session when the page drops it). */
  clear(): void {
    this.#token = undefined;
    this.#exp = 0;
  }
}
