import { generateKeyPairSync } from 'node:crypto';
import { FlattenedEncrypt, exportJWK, generateKeyPair, importJWK, type CryptoKey } from 'jose';
import { TeePubkeySchema } from '@keyhold/protocol';
import { describe, expect, it } from 'vitest';
import { encryptEcdhEsA256kw } from './jwe-ecdh-es-a256kw.js';
import { encryptRsaOaep256 } from './jwe-rsa-oaep-256.js';
import { importTeeKey } from './tee-key-import.js';

/**
 * Today's jose path (the KBS's wrapSecret before the hot-path modules), kept here as the reference
 * the new import must agree with: schema, alg agreement, importJWK, modulus ≥ 2048, and jose's own
 * checks at encryption time.
 */
async function joseAccepts(jwk: unknown): Promise<boolean> {
  const parsed = TeePubkeySchema.safeParse(jwk);
  if (!parsed.success) return false;
  const alg = parsed.data.kty === 'EC' ? 'ECDH-ES+A256KW' : 'RSA-OAEP-256';
  if (parsed.data.alg !== undefined && parsed.data.alg !== alg) return false;
  let key: CryptoKey | Uint8Array;
  try {
    key = await importJWK({ ...parsed.data, alg }, alg);
  } catch {
    return false;
  }
  const bits = (key as { algorithm?: { modulusLength?: number } }).algorithm?.modulusLength;
  if (bits !== undefined && bits < 2048) return false;
  try {
    await new FlattenedEncrypt(new Uint8Array(1)).setProtectedHeader({ alg, enc: 'A256GCM' }).encrypt(key);
    return true;
  } catch {
    return false;
  }
}

/** The KBS's path: import, then wrap (the ECDH checks that an EC point lies on its curve). */
function newAccepts(jwk: unknown): boolean {
  try {
    const key = importTeeKey(jwk);
    if (key.kty === 'EC') encryptEcdhEsA256kw(new Uint8Array(1), key);
    else encryptRsaOaep256(new Uint8Array(1), key);
    return true;
  } catch (err) {
    expect(err).toMatchObject({ code: 'JWE_FAILED' });
    return false;
  }
}

const ec256 = generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey.export({ format: 'jwk' });
const rsa2048 = generateKeyPairSync('rsa', { modulusLength: 2048 }).publicKey.export({ format: 'jwk' });
const b64 = (hex: string) => Buffer.from(hex, 'hex').toString('base64url');
const flip = (s: string) => (s[5] === 'A' ? `${s.slice(0, 5)}B${s.slice(6)}` : `${s.slice(0, 5)}A${s.slice(6)}`);

describe('importTeeKey', () => {
  it('imports the keys jose exports (the agent’s tee keys): EC P-256/P-384/P-521 and RSA 2048/3072', async () => {
    for (const [alg, opts] of [
      ['ECDH-ES+A256KW', { crv: 'P-256' }],
      ['ECDH-ES+A256KW', { crv: 'P-384' }],
      ['ECDH-ES+A256KW', { crv: 'P-521' }],
      ['RSA-OAEP-256', { modulusLength: 2048 }],
      ['RSA-OAEP-256', { modulusLength: 3072 }],
    ] as const) {
      const { publicKey } = await generateKeyPair(alg, { ...opts, extractable: true });
      const { kty, crv, x, y, n, e } = await exportJWK(publicKey);
      const jwk = kty === 'EC' ? { kty, crv, alg, x, y } : { kty, alg, n, e };
      const key = importTeeKey(jwk);
      expect(key.alg).toBe(alg);
      if (key.kty === 'EC') expect(key.crv).toBe(crv);
      else expect(key.modulusBits).toBe((opts as { modulusLength: number }).modulusLength);
      expect(await joseAccepts(jwk)).toBe(true);
    }
  });

  // Each hostile shape is refused by today's jose path; the new import must refuse it too (and accept
  // exactly what jose accepts).
  const cases: Array<[string, unknown]> = [
    ['valid EC without alg', { kty: 'EC', crv: 'P-256', x: ec256.x, y: ec256.y }],
    ['valid RSA without alg', { kty: 'RSA', n: rsa2048.n, e: rsa2048.e }],
    ['EC point off the curve (invalid-curve attack)', { kty: 'EC', crv: 'P-256', x: ec256.x, y: flip(ec256.y!) }],
    ['EC point (0,0)', { kty: 'EC', crv: 'P-256', x: b64('00'.repeat(32)), y: b64('00'.repeat(32)) }],
    ['EC coordinates ≥ p', { kty: 'EC', crv: 'P-256', x: b64('ff'.repeat(32)), y: b64('ff'.repeat(32)) }],
    ['EC point of P-256 named P-384 (curve confusion)', { kty: 'EC', crv: 'P-384', x: ec256.x, y: ec256.y }],
    ['EC short garbage', { kty: 'EC', crv: 'P-256', x: 'AAAA', y: 'AAAA' }],
    ['secp256k1 curve', { kty: 'EC', crv: 'secp256k1', x: ec256.x, y: ec256.y }],
    ['EC with RSA alg', { kty: 'EC', crv: 'P-256', alg: 'RSA-OAEP-256', x: ec256.x, y: ec256.y }],
    ['EC with direct ECDH-ES', { kty: 'EC', crv: 'P-256', alg: 'ECDH-ES', x: ec256.x, y: ec256.y }],
    ['RSA1_5 downgrade', { kty: 'RSA', alg: 'RSA1_5', n: rsa2048.n, e: rsa2048.e }],
    ['RSA-OAEP (SHA-1)', { kty: 'RSA', alg: 'RSA-OAEP', n: rsa2048.n, e: rsa2048.e }],
    ['RSA 1024-bit modulus', { kty: 'RSA', n: b64('c3'.repeat(128)), e: 'AQAB' }],
    ['RSA 2040-bit modulus', { kty: 'RSA', n: b64('c3'.repeat(255)), e: 'AQAB' }],
    ['private EC member d', { ...ec256, d: 'AAAA' }],
    ['unknown member', { kty: 'EC', crv: 'P-256', x: ec256.x, y: ec256.y, kid: 'x' }],
    ['oct key', { kty: 'oct', k: 'AAAA' }],
    ['OKP X25519', { kty: 'OKP', crv: 'X25519', x: ec256.x }],
    ['padded base64', { kty: 'EC', crv: 'P-256', x: `${ec256.x}=`, y: ec256.y }],
    ['standard base64 alphabet', { kty: 'RSA', n: `${rsa2048.n!.slice(0, -2)}+/`, e: 'AQAB' }],
    ['missing y', { kty: 'EC', crv: 'P-256', x: ec256.x }],
    ['numbers for coordinates', { kty: 'EC', crv: 'P-256', x: 1, y: 2 }],
    ['null', null],
    ['string', 'EC'],
    ['array', [ec256]],
  ];
  it.each(cases)('agrees with the jose path on: %s', async (_name, jwk) => {
    expect(newAccepts(jwk)).toBe(await joseAccepts(jwk));
  });

  it('keeps EC keys as their uncompressed point; a point off the curve passes the import but is refused by the ECDH', () => {
    const key = importTeeKey({ kty: 'EC', crv: 'P-256', x: ec256.x, y: ec256.y });
    if (key.kty !== 'EC') throw new Error('unreachable');
    expect(key.point.equals(Buffer.concat([Buffer.from([4]), Buffer.from(ec256.x!, 'base64url'), Buffer.from(ec256.y!, 'base64url')]))).toBe(true);
    const offCurve = importTeeKey({ kty: 'EC', crv: 'P-256', x: ec256.x, y: flip(ec256.y!) });
    if (offCurve.kty !== 'EC') throw new Error('unreachable');
    expect(() => encryptEcdhEsA256kw(new Uint8Array(1), offCurve)).toThrow(expect.objectContaining({ code: 'JWE_FAILED' }));
  });

  it('imports an RSA key once (later calls reuse the accepted key) and never keeps a refused one', () => {
    const a = importTeeKey({ kty: 'RSA', n: rsa2048.n, e: rsa2048.e });
    const b = importTeeKey({ kty: 'RSA', alg: 'RSA-OAEP-256', n: rsa2048.n, e: rsa2048.e });
    expect(a.kty === 'RSA' && b.kty === 'RSA' && a.key === b.key).toBe(true);
    // The shape and alg checks still run on every call, before the cache.
    expect(newAccepts({ kty: 'RSA', alg: 'RSA1_5', n: rsa2048.n, e: rsa2048.e })).toBe(false);
    expect(newAccepts({ kty: 'RSA', n: rsa2048.n, e: rsa2048.e, kid: 'x' })).toBe(false);
    const short = { kty: 'RSA', n: b64('c3'.repeat(128)), e: 'AQAB' };
    expect(newAccepts(short)).toBe(false);
    expect(newAccepts(short)).toBe(false);
  });

  it('refuses every hostile shape above (only the two valid keys pass)', () => {
    const accepted = cases.filter(([, jwk]) => newAccepts(jwk)).map(([name]) => name);
    expect(accepted).toEqual(['valid EC without alg', 'valid RSA without alg']);
  });
});
