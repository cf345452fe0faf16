// Fixtures: ../shared/corpus/quotes/keylime-checkquote (keylime test-data, tpm2-tools 5.4 outputs:
// ak.pub/ek.pub TPM2B_PUBLIC, ak.name, akpub.pem/ekpub.pem). Hostile variants are derived below.
import { createPublicKey, generateKeyPairSync } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { IdentityError } from '../identity/errors.js';
import { tpmPublicToSpkiDer } from '../identity/spki.js';
import { computeName, nameOfPublic } from './name.js';
import { parseTpm2bPublic, parseTpmtPublic } from './public.js';

const repoRoot = fileURLToPath(new URL('../../../../', import.meta.url));
const dir = path.resolve(repoRoot, '../shared/corpus/quotes/keylime-checkquote');
const haveCorpus = existsSync(dir);
const read = (f: string): Uint8Array => new Uint8Array(readFileSync(path.join(dir, f)));
const spkiOfPem = (f: string): Buffer => createPublicKey(readFileSync(path.join(dir, f), 'utf8')).export({ type: 'spki', format: 'der' });

function codeOf(f: () => unknown): string | undefined {
  try {
    f();
  } catch (e) {
    if (e instanceof IdentityError) return e.code;
    throw e;
  }
  return undefined;
}

describe.skipIf(!haveCorpus)('parseTpm2bPublic on keylime corpus (skipped when ../shared/corpus is absent)', () => {
  it('decodes the RSA AK with its attributes, scheme and modulus', () => {
    const ak = parseTpm2bPublic(read('ak.pub'));
    expect(ak.type).toBe('rsa');
    if (ak.type !== 'rsa') return;
    expect(ak.nameAlg).toBe('sha256');
    expect(ak.objectAttributes.raw).toBe(0x50072);
    expect(ak.objectAttributes).toMatchObject({ fixedTPM: true, fixedParent: true, sensitiveDataOrigin: true, userWithAuth: true, restricted: true, sign: true, decrypt: false, stClear: false, adminWithPolicy: false, noDA: false });
    expect(ak.authPolicy.length).toBe(0);
    expect(ak.parameters).toMatchObject({ symmetric: { algorithm: 'null' }, scheme: { scheme: 'rsassa', hashAlg: 'sha256' }, keyBits: 2048, exponent: 65537 });
    expect(ak.unique.length).toBe(256);
  });

  it('name of ak.pub equals ak.name, and its SPKI equals akpub.pem', () => {
    const ak = parseTpm2bPublic(read('ak.pub'));
    expect(Buffer.from(computeName(ak.tpmtPublic))).toEqual(Buffer.from(read('ak.name')));
    expect(Buffer.from(nameOfPublic(ak))).toEqual(Buffer.from(read('ak.name')));
    expect(Buffer.from(tpmPublicToSpkiDer(ak))).toEqual(spkiOfPem('akpub.pem'));
  });

  it('decodes the RSA EK (restricted decrypt, AES-128-CFB, PolicySecret(endorsement) authPolicy) and matches ekpub.pem', () => {
    const ek = parseTpm2bPublic(read('ek.pub'));
    expect(ek.type).toBe('rsa');
    if (ek.type !== 'rsa') return;
    expect(ek.objectAttributes).toMatchObject({ restricted: true, decrypt: true, sign: false, fixedTPM: true, adminWithPolicy: true, userWithAuth: false });
    expect(Buffer.from(ek.authPolicy).toString('hex')).toBe('837197674484b3f81a90cc8d46a5d724fd52d76e06520b64f2a1da1b331469aa');
    expect(ek.parameters.symmetric).toEqual({ algorithm: 'aes', keyBits: 128, mode: 'cfb' });
    expect(ek.parameters.scheme).toEqual({ scheme: 'null' });
    expect(Buffer.from(tpmPublicToSpkiDer(ek))).toEqual(spkiOfPem('ekpub.pem'));
  });

  it('rejects every truncation of ak.pub and ek.pub with a typed error', () => {
    for (const f of ['ak.pub', 'ek.pub']) {
      const b = read(f);
      for (let n = 0; n < b.length; n++) expect(codeOf(() => parseTpm2bPublic(b.subarray(0, n)))).toBe('TPM_PUBLIC_MALFORMED');
    }
  });

  it('rejects trailing bytes, an oversized outer size, and an inner TPM2B length past the end', () => {
    const b = read('ak.pub');
    expect(codeOf(() => parseTpm2bPublic(Uint8Array.of(...b, 0)))).toBe('TPM_PUBLIC_MALFORMED');
    const big = Uint8Array.from(b);
    big[0] = 0xff;
    big[1] = 0xff;
    expect(codeOf(() => parseTpm2bPublic(big))).toBe('TPM_PUBLIC_MALFORMED');
    // unique.rsa size field sits right before the modulus: point it past the end
    const t = Uint8Array.from(b);
    const at = t.length - 256 - 2;
    t[at] = 0x01;
    t[at + 1] = 0x01;
    expect(codeOf(() => parseTpm2bPublic(t))).toBe('TPM_PUBLIC_MALFORMED');
  });

  it('rejects a modulus shorter than keyBits, reserved attribute bits, unknown nameAlg/type/scheme/symmetric', () => {
    const tpmt = read('ak.pub').subarray(2);
    const mut = (off: number, ...v: number[]): Uint8Array => {
      const c = Uint8Array.from(tpmt);
      c.set(v, off);
      return c;
    };
    // Offsets: type 0, nameAlg 2, attributes 4, authPolicy size 8, symmetric 10, scheme 12,
    // scheme hash 14, keyBits 16, exponent 18, unique 22.
    expect(codeOf(() => parseTpmtPublic(mut(16, 0x10, 0x00)))).toBe('TPM_PUBLIC_MALFORMED'); // claims 4096, modulus is 2048
    expect(codeOf(() => parseTpmtPublic(mut(16, 0x02, 0x00)))).toBe('TPM_PUBLIC_UNSUPPORTED'); // 512-bit
    expect(codeOf(() => parseTpmtPublic(mut(4, 0x00, 0x05, 0x00, 0x73)))).toBe('TPM_PUBLIC_MALFORMED'); // reserved bit 0
    expect(codeOf(() => parseTpmtPublic(mut(4, 0x80, 0x05, 0x00, 0x72)))).toBe('TPM_PUBLIC_MALFORMED'); // reserved bit 31
    expect(codeOf(() => parseTpmtPublic(mut(2, 0x00, 0x10)))).toBe('TPM_PUBLIC_UNSUPPORTED'); // nameAlg NULL
    expect(codeOf(() => parseTpmtPublic(mut(0, 0x00, 0x08)))).toBe('TPM_PUBLIC_UNSUPPORTED'); // keyedhash
    expect(codeOf(() => parseTpmtPublic(mut(10, 0x00, 0x0a)))).toBe('TPM_PUBLIC_MALFORMED'); // XOR is not a sym object alg
    expect(codeOf(() => parseTpmtPublic(mut(12, 0x00, 0x18)))).toBe('TPM_PUBLIC_MALFORMED'); // ECDSA is not an RSA scheme
    expect(codeOf(() => parseTpmtPublic(mut(14, 0x00, 0x99)))).toBe('TPM_PUBLIC_MALFORMED'); // scheme hash unknown
    expect(codeOf(() => parseTpmtPublic(mut(18, 0x00, 0x01, 0x00, 0x00)))).toBe('TPM_PUBLIC_MALFORMED'); // even exponent 65536
    expect(codeOf(() => parseTpmtPublic(mut(8, 0x00, 0x41)))).toBe('TPM_PUBLIC_MALFORMED'); // authPolicy longer than any digest
    expect(codeOf(() => parseTpmtPublic(new Uint8Array(2000)))).toBe('TPM_PUBLIC_MALFORMED');
  });

  it('computeName refuses malformed bytes instead of naming them', () => {
    const tpmt = read('ak.pub').subarray(2);
    expect(codeOf(() => computeName(tpmt.subarray(0, 100)))).toBe('TPM_PUBLIC_MALFORMED');
  });
});

describe('parseTpmtPublic on ECC areas', () => {
  // A P-256 ECDSA restricted signing area built field by field (layout per Part 2 §12.2.4).
  const point = generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).publicKey.export({ format: 'jwk' });
  const x = Buffer.from(point.x ?? '', 'base64url');
  const y = Buffer.from(point.y ?? '', 'base64url');
  const area = (curve: number, px: Uint8Array = x, py: Uint8Array = y): Uint8Array =>
    Uint8Array.from(Buffer.concat([
      Buffer.from('0023000b00050072' + '0000' + '0010' + '0018000b' + curve.toString(16).padStart(4, '0') + '0010', 'hex'),
      Buffer.from([0, px.length]), px, Buffer.from([0, py.length]), py,
    ]));

  it('decodes curve, scheme, kdf and point, and converts to SPKI', () => {
    const pub = parseTpmtPublic(area(3));
    expect(pub.type).toBe('ecc');
    if (pub.type !== 'ecc') return;
    expect(pub.parameters).toEqual({ symmetric: { algorithm: 'null' }, scheme: { scheme: 'ecdsa', hashAlg: 'sha256' }, curve: 'NIST_P256', kdf: { scheme: 'null' } });
    const spki = tpmPublicToSpkiDer(pub);
    expect(createPublicKey({ key: Buffer.from(spki), format: 'der', type: 'spki' }).export({ format: 'jwk' })).toMatchObject({ crv: 'P-256', x: point.x, y: point.y });
  });

  it('rejects a coordinate longer than the curve, an unknown curve, and a point not on the curve', () => {
    expect(codeOf(() => parseTpmtPublic(area(3, Buffer.concat([Buffer.from([1]), x]))))).toBe('TPM_PUBLIC_MALFORMED');
    expect(codeOf(() => parseTpmtPublic(area(0x99)))).toBe('TPM_PUBLIC_UNSUPPORTED');
    const bad = Buffer.from(y);
    bad[31] = (bad[31] as number) ^ 1;
    expect(codeOf(() => tpmPublicToSpkiDer(parseTpmtPublic(area(3, x, bad))))).toBe('TPM_PUBLIC_MALFORMED');
  });
});
