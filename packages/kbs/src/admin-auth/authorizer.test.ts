import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import { SignJWT, UnsecuredJWT, base64url } from 'jose';
import { describe, expect, it } from 'vitest';
import { createAdminAuthorizer, type AdminAuthConfig } from './authorizer.js';
import type { AdminRoleConfig } from './acl.js';
import { AdminAuthError } from './errors.js';

const NOW = new Date('2026-11-27T12:00:00Z');
const nowSec = Math.floor(NOW.getTime() / 1000);

function keyPair(kind: 'ed25519' | 'p256' | 'p384' | 'rsa') {
  const kp =
    kind === 'ed25519'
      ? generateKeyPairSync('ed25519')
      : kind === 'rsa'
        ? generateKeyPairSync('rsa', { modulusLength: 2048 })
        : generateKeyPairSync('ec', { namedCurve: kind === 'p256' ? 'P-256' : 'P-384' });
  return { privateKey: kp.privateKey, publicKeyPem: kp.publicKey.export({ type: 'spki', format: 'pem' }).toString() };
}

const alice = keyPair('ed25519');
const bob = keyPair('p256');
const carol = keyPair('ed25519');
const dave = keyPair('ed25519');
const mallory = keyPair('ed25519');

const roles: Record<string, AdminRoleConfig> = {
  admin: { rules: [{ methods: ['*'], path: '/kbs/v0/.*' }] },
  auditor: { rules: [{ methods: ['GET'], path: '/kbs/v0/audit(/.*)?' }] },
  'owner-a': { rules: [{ methods: ['GET', 'POST', 'DELETE'], path: '/kbs/v0/(resource|resource-policy)/.*' }], repositories: ['a'] },
  'owner-b': { rules: [{ methods: ['GET', 'POST', 'DELETE'], path: '/kbs/v0/(resource|resource-policy)/.*' }], repositories: ['b'] },
};

const config: AdminAuthConfig = {
  identities: [
    { name: 'alice', publicKeyPem: alice.publicKeyPem, role: 'admin' },
    { name: 'bob', publicKeyPem: bob.publicKeyPem, role: 'auditor' },
    { name: 'carol', publicKeyPem: carol.publicKeyPem, role: 'owner-a' },
    { name: 'dave', publicKeyPem: dave.publicKeyPem, role: 'owner-b' },
  ],
  roles,
  issuer: 'keyhold-admin',
  audience: 'keyhold-kbs',
  clockToleranceSec: 0,
  now: () => NOW,
};

interface TokenOptions {
  alg?: 'EdDSA' | 'ES256';
  kid?: string;
  exp?: number | null;
  nbf?: number;
  iss?: string;
  aud?: string;
  role?: string;
  /** Default nowSec; null: no iat claim. */
  iat?: number | null;
}

async function token(key: KeyObject, o: TokenOptions = {}): Promise<string> {
  const claims: Record<string, unknown> = {};
  if (o.role !== undefined) claims.role = o.role;
  const jwt = new SignJWT(claims)
    .setProtectedHeader({ alg: o.alg ?? 'EdDSA', ...(o.kid === undefined ? {} : { kid: o.kid }) })
    .setIssuer(o.iss ?? 'keyhold-admin')
    .setAudience(o.aud ?? 'keyhold-kbs');
  if (o.exp !== null) jwt.setExpirationTime(o.exp ?? nowSec + 600);
  if (o.nbf !== undefined) jwt.setNotBefore(o.nbf);
  if (o.iat !== null) jwt.setIssuedAt(o.iat ?? nowSec);
  return jwt.sign(key);
}

const authz = createAdminAuthorizer(config);
async function codeOf(header: string | undefined, method = 'POST', path = '/kbs/v0/resource/a/key/1'): Promise<string> {
  try {
    const p = await authz.authorize({ authorizationHeader: header, method, path });
    return `ok:${p.identity}:${p.role}`;
  } catch (e) {
    if (e instanceof AdminAuthError) return e.code;
    throw e;
  }
}
const bearer = (t: string) => `Bearer ${t}`;

describe('admin token verification', () => {
  it('accepts EdDSA and ES256 tokens from configured identities', async () => {
    expect(await codeOf(bearer(await token(alice.privateKey)))).toBe('ok:alice:admin');
    expect(await codeOf(bearer(await token(bob.privateKey, { alg: 'ES256' })), 'GET', '/kbs/v0/audit')).toBe('ok:bob:auditor');
    expect(await codeOf(`bearer   ${await token(alice.privateKey, { kid: 'alice', role: 'admin' })}`)).toBe('ok:alice:admin');
  });

  it('refuses a missing or malformed Authorization header', async () => {
    expect(await codeOf(undefined)).toBe('ADMIN_TOKEN_MISSING');
    expect(await codeOf('')).toBe('ADMIN_TOKEN_MISSING');
    expect(await codeOf('Basic YWxpY2U6cHc=')).toBe('ADMIN_TOKEN_INVALID');
    expect(await codeOf('Bearer not-a-jwt')).toBe('ADMIN_TOKEN_INVALID');
    expect(await codeOf(`Bearer ${'a'.repeat(9000)}.b.c`)).toBe('ADMIN_TOKEN_INVALID');
  });

  it('refuses alg none, HMAC keyed with the public key, and RSA', async () => {
    const none = new UnsecuredJWT({ role: 'admin' }).setIssuer('keyhold-admin').setAudience('keyhold-kbs').setExpirationTime(nowSec + 600).encode();
    expect(await codeOf(bearer(none))).toBe('ADMIN_TOKEN_INVALID');
    // The classic confusion attack: HS256 with the admin's public key PEM as the HMAC secret.
    const hs = await new SignJWT({}).setProtectedHeader({ alg: 'HS256' }).setIssuer('keyhold-admin').setAudience('keyhold-kbs').setExpirationTime(nowSec + 600).sign(new TextEncoder().encode(alice.publicKeyPem));
    expect(await codeOf(bearer(hs))).toBe('ADMIN_TOKEN_INVALID');
    const rsa = keyPair('rsa');
    const rs = await new SignJWT({}).setProtectedHeader({ alg: 'RS256' }).setIssuer('keyhold-admin').setAudience('keyhold-kbs').setExpirationTime(nowSec + 600).sign(rsa.privateKey);
    expect(await codeOf(bearer(rs))).toBe('ADMIN_TOKEN_INVALID');
  });

  it('refuses forged tokens: wrong key, tampered payload, signature stripped, kid of another identity', async () => {
    expect(await codeOf(bearer(await token(mallory.privateKey)))).toBe('ADMIN_TOKEN_INVALID');
    // carol (owner-a) re-labels her token as alice's admin token.
    const [h, , s] = (await token(carol.privateKey)).split('.');
    const forgedPayload = base64url.encode(JSON.stringify({ iss: 'keyhold-admin', aud: 'keyhold-kbs', exp: nowSec + 600, role: 'admin' }));
    expect(await codeOf(bearer(`${h}.${forgedPayload}.${s}`))).toBe('ADMIN_TOKEN_INVALID');
    expect(await codeOf(bearer(`${h}.${forgedPayload}.`))).toBe('ADMIN_TOKEN_INVALID');
    expect(await codeOf(bearer(await token(carol.privateKey, { kid: 'alice' })))).toBe('ADMIN_TOKEN_INVALID');
    // An ES256 token from a P-256 key that is not configured.
    expect(await codeOf(bearer(await token(keyPair('p256').privateKey, { alg: 'ES256' })))).toBe('ADMIN_TOKEN_INVALID');
  });

  it('refuses expired tokens, tokens without exp, and tokens not yet valid', async () => {
    expect(await codeOf(bearer(await token(alice.privateKey, { exp: nowSec - 1 })))).toBe('ADMIN_TOKEN_EXPIRED');
    expect(await codeOf(bearer(await token(alice.privateKey, { exp: null })))).toBe('ADMIN_TOKEN_INVALID');
    expect(await codeOf(bearer(await token(alice.privateKey, { nbf: nowSec + 60 })))).toBe('ADMIN_TOKEN_INVALID');
    // An expired token from an unknown key is "invalid", not "expired".
    expect(await codeOf(bearer(await token(mallory.privateKey, { exp: nowSec - 1 })))).toBe('ADMIN_TOKEN_INVALID');
  });

  it('checks iss and aud when configured, and not when not', async () => {
    expect(await codeOf(bearer(await token(alice.privateKey, { iss: 'someone-else' })))).toBe('ADMIN_TOKEN_INVALID');
    expect(await codeOf(bearer(await token(alice.privateKey, { aud: 'other-kbs' })))).toBe('ADMIN_TOKEN_INVALID');
    const lax = createAdminAuthorizer({ ...config, issuer: undefined, audience: undefined });
    const p = await lax.authorize({ authorizationHeader: bearer(await token(alice.privateKey, { iss: 'x', aud: 'y' })), method: 'GET', path: '/kbs/v0/audit' });
    expect(p.identity).toBe('alice');
  });

  it('refuses a role claim the identity does not have, and over-long tokens when limited', async () => {
    expect(await codeOf(bearer(await token(carol.privateKey, { role: 'admin' })))).toBe('ADMIN_FORBIDDEN');
    const strict = createAdminAuthorizer({ ...config, maxTokenLifetimeSec: 3600 });
    await expect(strict.authorize({ authorizationHeader: bearer(await token(alice.privateKey, { exp: nowSec + 7200 })), method: 'GET', path: '/kbs/v0/audit' })).rejects.toMatchObject({
      code: 'ADMIN_TOKEN_INVALID',
    });
  });

  it('validates configuration at construction', () => {
    expect(() => createAdminAuthorizer({ ...config, identities: [{ name: 'x', publicKeyPem: 'nope', role: 'admin' }] })).toThrow(TypeError);
    expect(() => createAdminAuthorizer({ ...config, identities: [{ name: 'x', publicKeyPem: alice.publicKeyPem, role: 'root' }] })).toThrow(/unknown role/);
    expect(() => createAdminAuthorizer({ ...config, identities: [{ name: 'x', publicKeyPem: keyPair('p384').publicKeyPem, role: 'admin' }] })).toThrow(/Ed25519 or EC P-256/);
    expect(() => createAdminAuthorizer({ ...config, roles: { admin: { rules: [{ methods: ['GET'], path: '(' }] } } })).toThrow(/regular expression/);
  });

  it('allows everything only behind the explicit insecure flag, with a warning', async () => {
    expect(authz.warning).toBeUndefined();
    const open = createAdminAuthorizer({ identities: [], insecureAllowAll: true });
    expect(open.warning).toMatch(/INSECURE/);
    expect(await open.authorize({ authorizationHeader: undefined, method: 'DELETE', path: '/kbs/v0/resource/a/b/c' })).toMatchObject({ role: 'admin' });
    const closed = createAdminAuthorizer({ identities: [] });
    await expect(closed.authorize({ authorizationHeader: bearer(await token(alice.privateKey)), method: 'GET', path: '/kbs/v0/audit' })).rejects.toMatchObject({
      code: 'ADMIN_TOKEN_INVALID',
    });
  });
});

describe('ACL matrix (role × endpoint × repository)', () => {
  const endpoints: [string, string][] = [
    ['POST', '/kbs/v0/resource/a/key/1'],
    ['DELETE', '/kbs/v0/resource/b/key/1'],
    ['POST', '/kbs/v0/resource-policy/a'],
    ['POST', '/kbs/v0/resource-policy'],
    ['POST', '/kbs/v0/attestation-policy'],
    ['POST', '/kbs/v0/reference-value'],
    ['GET', '/kbs/v0/audit'],
    ['GET', '/kbs/v0/resource/a/key/1'],
  ];
  // Expected outcome per identity, in the order of `endpoints` (o = allowed, x = forbidden).
  const expected: Record<string, string> = {
    alice: 'oooooooo', // admin: everything
    bob: 'xxxxxxox', // auditor: the audit log only
    carol: 'oxoxxxxo', // owner of repository a: a's resources and a's policy only
    dave: 'xoxxxxxx', // owner of repository b: b's resources only
  };
  const keys: Record<string, { key: KeyObject; alg: 'EdDSA' | 'ES256' }> = {
    alice: { key: alice.privateKey, alg: 'EdDSA' },
    bob: { key: bob.privateKey, alg: 'ES256' },
    carol: { key: carol.privateKey, alg: 'EdDSA' },
    dave: { key: dave.privateKey, alg: 'EdDSA' },
  };

  for (const [who, row] of Object.entries(expected)) {
    it(`${who}: ${row}`, async () => {
      const k = keys[who];
      if (k === undefined) throw new Error('no key');
      const header = bearer(await token(k.key, { alg: k.alg }));
      const got = await Promise.all(endpoints.map(async ([m, p]) => ((await codeOf(header, m, p)).startsWith('ok:') ? 'o' : 'x')));
      expect(got.join('')).toBe(row);
    });
  }

  it('refuses path tricks that could make the ACL and the router disagree', async () => {
    const header = bearer(await token(carol.privateKey));
    for (const p of ['/kbs/v0/resource/a/../b/key', '/kbs/v0/resource/a%2F..%2Fb/key/1', '/kbs/v0/resource//b/key/1', '/kbs/v0/resource/a\\..\\b/k/1', 'kbs/v0/resource/a/k/1']) {
      expect(await codeOf(header, 'GET', p), p).toBe('ADMIN_FORBIDDEN');
    }
    const admin = bearer(await token(alice.privateKey));
    expect(await codeOf(admin, 'GET', '/kbs/v0/resource/a/../../../etc')).toBe('ADMIN_FORBIDDEN');
    // Anchoring: a rule for /kbs/v0/audit does not grant /x/kbs/v0/audit or /kbs/v0/audit-x.
    const auditor = bearer(await token(bob.privateKey, { alg: 'ES256' }));
    expect(await codeOf(auditor, 'GET', '/x/kbs/v0/audit')).toBe('ADMIN_FORBIDDEN');
    expect(await codeOf(auditor, 'GET', '/kbs/v0/audit-x')).toBe('ADMIN_FORBIDDEN');
  });

  it('authorizes `ak:` node ids raw (`:` is plain), never percent-encoded; a limited owner reaches no node endpoint', async () => {
    const admin = bearer(await token(alice.privateKey));
    const id = `ak:${'ab'.repeat(32)}`;
    expect(await codeOf(admin, 'POST', `/kbs/v0/admin/nodes/${id}/unban`)).toMatch(/^ok:/);
    expect(await codeOf(admin, 'GET', `/kbs/v0/admin/nodes/ak%3A${'ab'.repeat(32)}`)).toBe('ADMIN_FORBIDDEN');
    expect(await codeOf(bearer(await token(carol.privateKey)), 'GET', `/kbs/v0/admin/nodes/${id}`)).toBe('ADMIN_FORBIDDEN');
  });
});

describe('admin token lifetime and clock skew (issue 12)', () => {
  const call = (a: ReturnType<typeof createAdminAuthorizer>, t: string) => a.authorize({ authorizationHeader: `Bearer ${t}`, method: 'GET', path: '/kbs/v0/audit' });
  const H = 3600;

  it('accepts up to 24 h by default, measured as exp - iat', async () => {
    const a = createAdminAuthorizer(config);
    await expect(call(a, await token(alice.privateKey, { exp: nowSec + 24 * H }))).resolves.toMatchObject({ identity: 'alice' });
    await expect(call(a, await token(alice.privateKey, { iat: null, exp: nowSec + 23 * H }))).resolves.toMatchObject({ identity: 'alice' });
  });

  // SECURITY negative tests: a leaked long-lived admin token must not work (bounded damage).
  it('refuses a longer lifetime: exp - iat, or exp - now without iat, naming the limit and the fix', async () => {
    const a = createAdminAuthorizer(config);
    const long = call(a, await token(alice.privateKey, { exp: nowSec + 25 * H }));
    await expect(long).rejects.toMatchObject({ code: 'ADMIN_TOKEN_INVALID' });
    await expect(long).rejects.toThrow(/lifetime \(exp - iat = 90000 s\) exceeds this KBS's maximum of 86400 s \(\[admin\] max_token_lifetime_s\); issue a shorter one: keyhold token issue --lifetime 1h/);
    // Issued 30 h ago, 1 h left: still a 31-hour token.
    await expect(call(a, await token(alice.privateKey, { iat: nowSec - 30 * H, exp: nowSec + H }))).rejects.toThrow(/exp - iat = 111600 s/);
    await expect(call(a, await token(alice.privateKey, { iat: null, exp: nowSec + 25 * H }))).rejects.toThrow(/exp - now = 90000 s/);
    // A configured maximum applies instead of the default.
    const week = createAdminAuthorizer({ ...config, maxTokenLifetimeSec: 7 * 24 * H });
    await expect(call(week, await token(alice.privateKey, { exp: nowSec + 6 * 24 * H }))).resolves.toMatchObject({ identity: 'alice' });
  });

  it('refuses a token issued in the future beyond the skew (it would stretch its lifetime)', async () => {
    const a = createAdminAuthorizer({ ...config, clockToleranceSec: 30 });
    await expect(call(a, await token(alice.privateKey, { iat: nowSec + 20, exp: nowSec + 600 }))).resolves.toMatchObject({ identity: 'alice' });
    await expect(call(a, await token(alice.privateKey, { iat: nowSec + 3600, exp: nowSec + 7200 }))).rejects.toThrow(/iat is 3600 s in the future \(clock skew allowed: 30 s\)/);
  });

  it('tolerates the configured clock skew on exp (and only that); an expired token suggests keyhold token issue', async () => {
    const expired20s = await token(alice.privateKey, { iat: nowSec - 600, exp: nowSec - 20 });
    await expect(call(createAdminAuthorizer({ ...config, clockToleranceSec: 30 }), expired20s)).resolves.toMatchObject({ identity: 'alice' });
    const strict = call(createAdminAuthorizer({ ...config, clockToleranceSec: 10 }), expired20s);
    await expect(strict).rejects.toMatchObject({ code: 'ADMIN_TOKEN_EXPIRED' });
    await expect(strict).rejects.toThrow(/admin token has expired; issue a new one: keyhold token issue/);
    expect(() => createAdminAuthorizer({ ...config, clockToleranceSec: -1 })).toThrow(TypeError);
    expect(() => createAdminAuthorizer({ ...config, maxTokenLifetimeSec: 0 })).toThrow(TypeError);
  });
});
