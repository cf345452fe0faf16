import type { KeyObject } from 'node:crypto';
import { jwtVerify } from 'jose';
import { KbsError } from '../errors.js';
import type { AdminAuthorizer } from './admin-authorizer.js';

/**
 * The minimal admin authorizer: one Ed25519 public key (Trustee's compose setup); any valid token
 * it signed may call every admin endpoint. Tokens must be EdDSA JWTs with `exp`.
 */
export function singleKeyAdminAuthorizer(publicKey: KeyObject, opts: { now?: () => number } = {}): AdminAuthorizer {
  if (publicKey.asymmetricKeyType !== 'ed25519') throw new TypeError('the admin public key must be Ed25519');
  return {
    async authorize({ authorizationHeader }) {
      // SECURITY: no token, no admin call (unauthenticated secret upload or deletion).
      const m = authorizationHeader === undefined ? null : /^Bearer\s+(\S+)$/i.exec(authorizationHeader.trim());
      if (m === null) throw new KbsError('ADMIN_UNAUTHORIZED', 'admin endpoints need Authorization: Bearer <admin token>');
      try {
        // SECURITY: only EdDSA with the configured key; `alg: none`, HMAC with the public key as
        // secret, and other keys are refused (algorithm confusion, forgery). `exp` is required
        // so a leaked token does not work forever.
        const { payload } = await jwtVerify(m[1]!, publicKey, {
          algorithms: ['EdDSA'],
          requiredClaims: ['exp'],
          ...(opts.now !== undefined ? { currentDate: new Date(opts.now()) } : {}),
        });
        return {
          identity: typeof payload.sub === 'string' ? payload.sub : 'admin',
          role: 'admin',
          ...(typeof payload.exp === 'number' ? { expiresAtMs: payload.exp * 1000 } : {}),
          allows: () => true,
        };
      } catch (cause) {
        throw new KbsError('ADMIN_UNAUTHORIZED', 'admin token is invalid or expired', { cause });
      }
    },
  };
}
