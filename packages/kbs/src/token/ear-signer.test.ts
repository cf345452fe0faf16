import { generateKeyPairSync } from 'node:crypto';
import { SignJWT, createLocalJWKSet, jwtVerify } from 'jose';
import { describe, expect, it } from 'vitest';
import { EAR_PROFILE, EarSigner } from './ear-signer.js';

async function signer(now = () => Date.now()) {
  return EarSigner.create({ privateKey: generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey, issuer: 'kbs-test', lifetimeMs: 60_000, now });
}

describe('EarSigner', () => {
  it('signs ES256 EAR tokens it can verify, with iat/exp/iss and the JWK in the header', async () => {
    const s = await signer();
    const t = await s.sign({ eat_profile: EAR_PROFILE });
    const header = JSON.parse(Buffer.from(t.split('.')[0]!, 'base64url').toString()) as { alg: string; jwk: { kty: string } };
    expect(header.alg).toBe('ES256');
    expect(header.jwk.kty).toBe('EC');
    const claims = await s.verify(t);
    expect(claims.iss).toBe('kbs-test');
    expect(claims.exp! - claims.iat!).toBe(60);
    expect(s.jwks().keys[0]).toMatchObject({ alg: 'ES256', use: 'sig' });
  });

  it('refuses expired tokens, other signers, non-EAR tokens and alg none', async () => {
    let now = Date.now();
    const s = await signer(() => now);
    const t = await s.sign({ eat_profile: EAR_PROFILE });
    now += 61_000;
    await expect(s.verify(t)).rejects.toMatchObject({ code: 'TOKEN_INVALID' });
    now -= 61_000;
    const other = await signer();
    await expect(s.verify(await other.sign({ eat_profile: EAR_PROFILE }))).rejects.toMatchObject({ code: 'TOKEN_INVALID' });
    await expect(s.verify(await s.sign({ eat_profile: 'something-else' }))).rejects.toMatchObject({ code: 'TOKEN_INVALID' });
    const none = `${Buffer.from('{"alg":"none"}').toString('base64url')}.${Buffer.from(JSON.stringify({ eat_profile: EAR_PROFILE, iss: 'kbs-test', exp: 9e9, iat: 1 })).toString('base64url')}.`;
    await expect(s.verify(none)).rejects.toMatchObject({ code: 'TOKEN_INVALID' });
    const hs = await new SignJWT({ eat_profile: EAR_PROFILE }).setProtectedHeader({ alg: 'HS256' }).setIssuer('kbs-test').setIssuedAt().setExpirationTime('1m').sign(new Uint8Array(32));
    await expect(s.verify(hs)).rejects.toMatchObject({ code: 'TOKEN_INVALID' });
  });

  it('interoperates with jose both ways: jose verifies ours against the JWKS; we accept what jose signs with our key', async () => {
    const key = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
    const s = await EarSigner.create({ privateKey: key, issuer: 'kbs-test', lifetimeMs: 60_000 });
    const ours = await s.sign({ eat_profile: EAR_PROFILE, submods: { cpu0: { 'ear.status': 'affirming' } } });
    const { payload, protectedHeader } = await jwtVerify(ours, createLocalJWKSet(s.jwks()), { algorithms: ['ES256'], issuer: 'kbs-test' });
    expect(payload).toMatchObject({ eat_profile: EAR_PROFILE, iss: 'kbs-test' });
    expect(protectedHeader).toMatchObject({ alg: 'ES256', typ: 'JWT', kid: s.jwks().keys[0]!.kid });
    // jose signing the same claims with the same header and times yields the same header and payload bytes.
    const header = JSON.parse(Buffer.from(ours.split('.')[0]!, 'base64url').toString()) as { alg: string };
    const theirs = await new SignJWT({ eat_profile: EAR_PROFILE, submods: { cpu0: { 'ear.status': 'affirming' } } })
      .setProtectedHeader(header)
      .setIssuedAt(payload.iat!)
      .setExpirationTime(payload.exp!)
      .setIssuer('kbs-test')
      .sign(key);
    expect(theirs.split('.').slice(0, 2)).toEqual(ours.split('.').slice(0, 2));
    await expect(s.verify(theirs)).resolves.toMatchObject({ eat_profile: EAR_PROFILE });
  });
});
