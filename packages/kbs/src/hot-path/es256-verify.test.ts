import { createPublicKey, generateKeyPairSync, sign } from 'node:crypto';
import { SignJWT, jwtVerify } from 'jose';
import { describe, expect, it } from 'vitest';
import { Es256CompactSigner } from './es256-sign.js';
import { verifyEs256Jwt } from './es256-verify.js';

const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const attacker = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
const NOW_MS = 1_700_000_030_000;
const NOW = 1_700_000_030;
const opts = { publicKey, issuer: 'kbs', requiredClaims: ['exp', 'iat'], nowMs: NOW_MS };
const b64 = (v: unknown) => Buffer.from(typeof v === 'string' ? v : JSON.stringify(v)).toString('base64url');
const good = { eat_profile: 'p', iat: NOW - 30, exp: NOW + 30, iss: 'kbs' };

/** A token with arbitrary header and payload, signed with `key` (the real ES256 signature of those bytes). */
function forge(header: unknown, payload: unknown, key = privateKey): string {
  const input = `${b64(header)}.${b64(payload)}`;
  return `${input}.${sign('sha256', Buffer.from(input), { key, dsaEncoding: 'ieee-p1363' }).toString('base64url')}`;
}

async function joseAccepts(token: string): Promise<boolean> {
  try {
    await jwtVerify(token, publicKey, { algorithms: ['ES256'], issuer: 'kbs', requiredClaims: ['exp', 'iat'], currentDate: new Date(NOW_MS) });
    return true;
  } catch {
    return false;
  }
}

function oursAccepts(token: string): boolean {
  try {
    verifyEs256Jwt(token, opts);
    return true;
  } catch (err) {
    expect(err).toMatchObject({ code: 'TOKEN_INVALID' });
    return false;
  }
}

describe('verifyEs256Jwt', () => {
  it('accepts tokens jose signs and tokens we sign, with the same claims jose returns', async () => {
    const fromJose = await new SignJWT({ eat_profile: 'p' }).setProtectedHeader({ alg: 'ES256', typ: 'JWT' }).setIssuedAt(NOW - 30).setExpirationTime(NOW + 30).setIssuer('kbs').sign(privateKey);
    const fromUs = new Es256CompactSigner(privateKey, { alg: 'ES256', typ: 'JWT' }).sign(good);
    for (const t of [fromJose, fromUs]) {
      const { payload } = await jwtVerify(t, publicKey, { algorithms: ['ES256'], currentDate: new Date(NOW_MS) });
      expect(verifyEs256Jwt(t, opts)).toEqual(payload);
    }
  });

  const valid = forge({ alg: 'ES256' }, good);
  const sig = valid.split('.')[2]!;
  const hostile: Array<[string, string]> = [
    ['alg none, empty signature', `${b64({ alg: 'none' })}.${b64(good)}.`],
    ['HS256 keyed with the public key', `${b64({ alg: 'HS256' })}.${b64(good)}.${sig}`],
    ['ES384 label on an ES256 signature', forge({ alg: 'ES384' }, good)],
    ['signed by another key that it embeds (key confusion)', forge({ alg: 'ES256', jwk: createPublicKey(attacker).export({ format: 'jwk' }) }, good, attacker)],
    ['payload changed after signing', `${forge({ alg: 'ES256' }, good).split('.')[0]}.${b64({ ...good, iss: 'kbs', admin: true })}.${sig}`],
    ['expired', forge({ alg: 'ES256' }, { ...good, exp: NOW })],
    ['not yet valid (nbf)', forge({ alg: 'ES256' }, { ...good, nbf: NOW + 5 })],
    ['no exp', forge({ alg: 'ES256' }, { eat_profile: 'p', iat: NOW, iss: 'kbs' })],
    ['no iat', forge({ alg: 'ES256' }, { eat_profile: 'p', exp: NOW + 30, iss: 'kbs' })],
    ['no iss', forge({ alg: 'ES256' }, { eat_profile: 'p', iat: NOW, exp: NOW + 30 })],
    ['other issuer', forge({ alg: 'ES256' }, { ...good, iss: 'evil' })],
    ['string exp', forge({ alg: 'ES256' }, { ...good, exp: String(NOW + 30) })],
    ['string iat', forge({ alg: 'ES256' }, { ...good, iat: 'yesterday' })],
    ['claims set is an array', forge({ alg: 'ES256' }, [good])],
    ['claims set is not JSON', forge({ alg: 'ES256' }, 'not json')],
    ['header is not an object', forge('ES256', good)],
    ['unknown critical extension', forge({ alg: 'ES256', crit: ['x'], x: 1 }, good)],
    ['unencoded payload (b64 false)', forge({ alg: 'ES256', crit: ['b64'], b64: false }, good)],
    ['DER signature instead of R‖S', `${forge({ alg: 'ES256' }, good).split('.').slice(0, 2).join('.')}.${sign('sha256', Buffer.from(forge({ alg: 'ES256' }, good).split('.').slice(0, 2).join('.')), privateKey).toString('base64url')}`],
    ['signature with a trailing byte', `${forge({ alg: 'ES256' }, good)}A`],
    // Node's lenient decoder would skip the '!' and find a valid signature.
    ['junk character in the signature', `${valid.slice(0, -10)}!${valid.slice(-10)}`],
    ['four parts', `${forge({ alg: 'ES256' }, good)}.x`],
    ['JWE-shaped five parts', 'a.b.c.d.e'],
    ['empty', ''],
  ];
  it('accepts the untouched token the hostile variants derive from', () => {
    expect(oursAccepts(valid)).toBe(true);
    // Node's lenient base64 decoder alone would accept the junk-character variant.
    expect(Buffer.from(`${sig.slice(0, -10)}!${sig.slice(-10)}`, 'base64url').length).toBe(64);
  });

  it.each(hostile)('refuses, as jose does: %s', async (_name, token) => {
    expect(oursAccepts(token)).toBe(false);
    expect(await joseAccepts(token)).toBe(false);
  });

  it('refuses invalid UTF-8 in the claims set', () => {
    const input = `${b64({ alg: 'ES256' })}.${Buffer.from([0x7b, 0xff, 0x7d]).toString('base64url')}`;
    const t = `${input}.${sign('sha256', Buffer.from(input), { key: privateKey, dsaEncoding: 'ieee-p1363' }).toString('base64url')}`;
    expect(oursAccepts(t)).toBe(false);
  });
});
