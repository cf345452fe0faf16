import { generateKeyPairSync } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { TpmError } from '../errors.js';
import { decodeUnverifiedQuoteAttest, encodeQuoteAttest, encodeTpmtSignature, parseTpmtSignature } from './quote-format.js';
import { decodePublicArea as parseTpm2bPublic, publicAreaName as tpmObjectName, tpm2bPublicToSpkiDer } from './public-area.js';
import { akTemplate, ekTemplate } from './templates.js';
import { stripDerPadding } from './internal/nv-read.js';
import { TpmWriter } from './internal/tpm-bytes.js';

const attest = encodeQuoteAttest({
  qualifiedSigner: new Uint8Array(34).fill(1),
  extraData: new Uint8Array(32).fill(2),
  clock: 5n,
  resetCount: 1,
  restartCount: 2,
  safe: true,
  firmwareVersion: 7n,
  pcrSelections: [{ hashAlg: 0x000b, indices: [0, 7, 23] }],
  pcrDigest: new Uint8Array(32).fill(3),
});

function expectBad(fn: () => unknown): void {
  let err: unknown;
  try {
    fn();
  } catch (e) {
    err = e;
  }
  expect(err).toBeInstanceOf(TpmError);
  expect((err as TpmError).code).toBe('TPM_BAD_RESPONSE');
}

describe('TPMS_ATTEST', () => {
  it('round-trips a quote', () => {
    const a = decodeUnverifiedQuoteAttest(attest);
    expect(a.pcrSelections).toEqual([{ hashAlg: 0x000b, indices: [0, 7, 23] }]);
    expect(a.extraData).toEqual(new Uint8Array(32).fill(2));
    expect(a.clock).toBe(5n);
    expect(a.firmwareVersion).toBe(7n);
  });

  it('rejects every truncation, trailing bytes, bad magic, wrong type and oversized fields with a coded error', () => {
    for (let n = 0; n < attest.length; n++) expectBad(() => decodeUnverifiedQuoteAttest(attest.subarray(0, n)));
    expectBad(() => decodeUnverifiedQuoteAttest(Buffer.concat([attest, Buffer.of(0)])));
    const flipped = Buffer.from(attest);
    flipped[0]! ^= 1;
    expectBad(() => decodeUnverifiedQuoteAttest(flipped));
    const certify = Buffer.from(attest);
    certify.writeUInt16BE(0x8017, 4);
    expectBad(() => decodeUnverifiedQuoteAttest(certify));
    const bigName = Buffer.from(attest);
    bigName.writeUInt16BE(0xffff, 6);
    expectBad(() => decodeUnverifiedQuoteAttest(bigName));
    const manySel = Buffer.from(attest);
    manySel.writeUInt32BE(0xffffffff, 6 + 2 + 34 + 2 + 32 + 17 + 8);
    expectBad(() => decodeUnverifiedQuoteAttest(manySel));
  });

  it('parses and rejects TPMT_SIGNATURE', () => {
    const sig = encodeTpmtSignature({ sigAlg: 'ecdsa', hashAlg: 0x000b, r: new Uint8Array(32), s: new Uint8Array(32) });
    expect(parseTpmtSignature(sig)).toMatchObject({ sigAlg: 'ecdsa', hashAlg: 0x000b });
    expectBad(() => parseTpmtSignature(sig.subarray(0, sig.length - 1)));
    expectBad(() => parseTpmtSignature(Uint8Array.of(0x00, 0x16, 0x00, 0x0b, 0, 0)));
  });
});

describe('TPM2B_PUBLIC through the verifier (public-area.ts)', () => {
  it('converts RSA and ECC public areas to SPKI', () => {
    const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const jwk = ec.publicKey.export({ format: 'jwk' });
    const area = akTemplate('ecc', { x: Buffer.from(jwk.x!, 'base64url'), y: Buffer.from(jwk.y!, 'base64url') });
    expect(Buffer.from(tpm2bPublicToSpkiDer(area))).toEqual(ec.publicKey.export({ type: 'spki', format: 'der' }));
    expect(parseTpm2bPublic(ekTemplate('rsa')).type).toBe('rsa');
    expect(tpmObjectName(area)).toHaveLength(34);
  });

  it('rejects malformed public areas with a coded error', () => {
    const area = ekTemplate('ecc');
    for (let n = 0; n < area.length; n++) expectBad(() => parseTpm2bPublic(area.subarray(0, n)));
    // The all-zero point of the EK template is not on the curve.
    expectBad(() => tpm2bPublicToSpkiDer(area));
    const keyedHash = Buffer.from(area);
    keyedHash.writeUInt16BE(0x0008, 2);
    expectBad(() => parseTpm2bPublic(keyedHash));
    const p521 = Buffer.from(akTemplate('ecc', { x: new Uint8Array(32), y: new Uint8Array(32) }));
    p521.writeUInt16BE(0x0005, 2 + 2 + 2 + 4 + 2 + 2 + 4);
    expectBad(() => tpm2bPublicToSpkiDer(p521));
    const rsa = new TpmWriter().tpm2b(ekTemplate('rsa').subarray(2, 2 + 2 + 2 + 4 + 34 + 6 + 2 + 2 + 4)).finish();
    expectBad(() => parseTpm2bPublic(rsa));
    const shortModulus = akTemplate('rsa', { n: new Uint8Array(128).fill(1) });
    expectBad(() => parseTpm2bPublic(shortModulus));
  });
});

describe('stripDerPadding', () => {
  it('removes only 0xFF/0x00 padding after a DER value', () => {
    const der = Uint8Array.of(0x30, 0x82, 0x00, 0x02, 0x05, 0x00);
    expect(stripDerPadding(Uint8Array.of(...der, 0xff, 0xff, 0x00))).toEqual(der);
    expect(stripDerPadding(Uint8Array.of(...der, 0xff, 0x01))).toHaveLength(8);
    expect(stripDerPadding(Uint8Array.of(0x30, 0x82, 0xff, 0xff))).toHaveLength(4);
    expect(stripDerPadding(Uint8Array.of(0x04, 0x01, 0x00, 0xff))).toHaveLength(4);
  });
});
