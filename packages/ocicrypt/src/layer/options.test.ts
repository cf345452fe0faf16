import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { encodePrivateOptions, encodePublicOptions, parsePrivateOptions, parsePublicOptions } from './options.js';

const digest = 'sha256:' + 'ab'.repeat(32);
const b64json = (o: unknown): string => Buffer.from(JSON.stringify(o)).toString('base64');

describe('ocicrypt layer options', () => {
  it('writes PrivateLayerBlockCipherOptions as Go does and reads it back', () => {
    const symkey = randomBytes(32);
    const nonce = randomBytes(16);
    const bytes = encodePrivateOptions({ symkey, digest, nonce });
    expect(JSON.parse(bytes.toString())).toEqual({ symkey: symkey.toString('base64'), digest, cipheroptions: { nonce: nonce.toString('base64') } });
    const back = parsePrivateOptions(bytes);
    expect(back.symkey.equals(symkey)).toBe(true);
    expect(back.nonce.equals(nonce)).toBe(true);
    expect(back.digest).toBe(digest);
  });

  it('accepts a newer ocicrypt optsdata with previouslayersdigest', () => {
    const o = { symkey: randomBytes(32).toString('base64'), digest, cipheroptions: { nonce: randomBytes(16).toString('base64') }, previouslayersdigest: digest };
    expect(parsePrivateOptions(Buffer.from(JSON.stringify(o))).digest).toBe(digest);
  });

  it.each([
    ['short key', { symkey: randomBytes(16).toString('base64'), digest, cipheroptions: { nonce: randomBytes(16).toString('base64') } }],
    ['short nonce', { symkey: randomBytes(32).toString('base64'), digest, cipheroptions: { nonce: randomBytes(12).toString('base64') } }],
    ['no nonce', { symkey: randomBytes(32).toString('base64'), digest, cipheroptions: {} }],
    ['bad digest', { symkey: randomBytes(32).toString('base64'), digest: 'sha256:../../etc', cipheroptions: { nonce: randomBytes(16).toString('base64') } }],
    ['junk base64', { symkey: '!!!' + randomBytes(32).toString('base64'), digest, cipheroptions: { nonce: randomBytes(16).toString('base64') } }],
    ['array', []],
  ])('refuses optsdata with %s', (_n, o) => {
    expect(() => parsePrivateOptions(Buffer.from(JSON.stringify(o)))).toThrow(expect.objectContaining({ code: 'LAYER_OPTSDATA_INVALID' }));
  });

  it('refuses oversized and non-JSON optsdata', () => {
    expect(() => parsePrivateOptions(Buffer.alloc(20_000, 0x20))).toThrow(expect.objectContaining({ code: 'LAYER_OPTSDATA_INVALID' }));
    expect(() => parsePrivateOptions(Buffer.from('{'))).toThrow(expect.objectContaining({ code: 'LAYER_OPTSDATA_INVALID' }));
  });

  it('writes pubopts exactly as skopeo 1.9.3 does and reads both hmac placements', () => {
    const hmac = randomBytes(32);
    const bytes = encodePublicOptions({ cipher: 'AES_256_CTR_HMAC_SHA256', hmac });
    expect(bytes.toString()).toBe(`{"cipher":"AES_256_CTR_HMAC_SHA256","hmac":"${hmac.toString('base64')}","cipheroptions":{}}`);
    expect(parsePublicOptions(bytes.toString('base64')).hmac.equals(hmac)).toBe(true);
    const legacy = b64json({ cipher: 'AES_256_CTR_HMAC_SHA256', hmac: null, cipheroptions: { hmac: hmac.toString('base64') } });
    expect(parsePublicOptions(legacy).hmac.equals(hmac)).toBe(true);
  });

  it('refuses unknown ciphers, missing or short MACs and missing pubopts', () => {
    expect(() => parsePublicOptions(b64json({ cipher: 'AES_128_CBC', hmac: randomBytes(32).toString('base64') }))).toThrow(expect.objectContaining({ code: 'LAYER_CIPHER_UNSUPPORTED' }));
    expect(() => parsePublicOptions(b64json({ cipher: 'AES_256_CTR_HMAC_SHA256' }))).toThrow(expect.objectContaining({ code: 'LAYER_PUBOPTS_INVALID' }));
    expect(() => parsePublicOptions(b64json({ cipher: 'AES_256_CTR_HMAC_SHA256', hmac: randomBytes(16).toString('base64') }))).toThrow(expect.objectContaining({ code: 'LAYER_PUBOPTS_INVALID' }));
    expect(() => parsePublicOptions(undefined)).toThrow(expect.objectContaining({ code: 'LAYER_PUBOPTS_INVALID' }));
    expect(() => parsePublicOptions('not base64!')).toThrow(expect.objectContaining({ code: 'LAYER_PUBOPTS_INVALID' }));
  });
});
