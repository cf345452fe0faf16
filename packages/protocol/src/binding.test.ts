import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { jcs } from './jcs.js';
import { fitReportData, runtimeDataCanonicalJson, runtimeDataDigest, selectedBindingHash, tpmQualifyingData } from './binding.js';

const jwk = { kty: 'EC', crv: 'P-256', alg: 'ECDH-ES+A256KW', x: 'abc', y: 'def' } as const;

describe('runtime-data binding', () => {
  it('matches Trustee’s JCS + SHA-384 test vector', () => {
    // Trustee's unit test: JCS+SHA-384 of {"b":1,"a":"test","c":{"d":"e"}} starts e71ce8e7 and ends 70c3.
    const hex = createHash('sha384').update(jcs({ b: 1, a: 'test', c: { d: 'e' } })).digest('hex');
    expect(hex.startsWith('e71ce8e7')).toBe(true);
    expect(hex.endsWith('70c3')).toBe(true);
  });

  it('canonicalises keys in RFC 8785 order, including the JWK members', () => {
    const text = runtimeDataCanonicalJson({ nonce: 'n0', teePubkey: { ...jwk } });
    expect(text).toBe('{"additional-evidence":"","nonce":"n0","tee-pubkey":{"alg":"ECDH-ES+A256KW","crv":"P-256","kty":"EC","x":"abc","y":"def"}}');
  });

  it('changes when the nonce, the key or the additional evidence changes', () => {
    const base = Buffer.from(runtimeDataDigest({ nonce: 'n0', teePubkey: jwk })).toString('hex');
    expect(Buffer.from(runtimeDataDigest({ nonce: 'n1', teePubkey: jwk })).toString('hex')).not.toBe(base);
    expect(Buffer.from(runtimeDataDigest({ nonce: 'n0', teePubkey: { ...jwk, x: 'abd' } })).toString('hex')).not.toBe(base);
    expect(Buffer.from(runtimeDataDigest({ nonce: 'n0', teePubkey: jwk, additionalEvidence: '{}' })).toString('hex')).not.toBe(base);
  });

  it('fits the digest to the 32-byte TPM qualifying data', () => {
    const d = runtimeDataDigest({ nonce: 'n0', teePubkey: jwk });
    expect(d.length).toBe(48);
    const q = tpmQualifyingData({ nonce: 'n0', teePubkey: jwk });
    expect(q.length).toBe(32);
    expect(Buffer.from(q)).toEqual(Buffer.from(d.subarray(0, 32)));
    expect(Buffer.from(fitReportData(new Uint8Array([1, 2]), 4))).toEqual(Buffer.from([1, 2, 0, 0]));
  });

  it('honours a selected hash algorithm and ignores unknown ones', () => {
    expect(selectedBindingHash({ 'selected-hash-algorithm': 'SHA512' })).toBe('sha512');
    expect(selectedBindingHash({ 'selected-hash-algorithm': 'md5' })).toBe('sha384');
    expect(selectedBindingHash('')).toBe('sha384');
  });
});
