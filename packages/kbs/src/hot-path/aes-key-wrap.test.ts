import { createDecipheriv } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { aes256KeyWrap } from './aes-key-wrap.js';

describe('aes256KeyWrap', () => {
  it('matches RFC 3394 §4.6 (256 bits of key data with a 256-bit KEK)', () => {
    const kek = Buffer.from('000102030405060708090A0B0C0D0E0F101112131415161718191A1B1C1D1E1F', 'hex');
    const keyData = Buffer.from('00112233445566778899AABBCCDDEEFF000102030405060708090A0B0C0D0E0F', 'hex');
    expect(aes256KeyWrap(kek, keyData).toString('hex').toUpperCase()).toBe('28C9F404C4B810F4CBCCB35CFB87F8263F5786E2D80ED326CBC7F0E71A99F43BFB988B9B7A02DD21');
  });

  it('unwraps with the default IV and refuses a tampered wrap (integrity check of RFC 3394 §2.2.3)', () => {
    const kek = Buffer.alloc(32, 1);
    const cek = Buffer.alloc(32, 2);
    const wrapped = aes256KeyWrap(kek, cek);
    const unwrap = (w: Buffer) => {
      const d = createDecipheriv('id-aes256-wrap', kek, Buffer.from('a6a6a6a6a6a6a6a6', 'hex'));
      return Buffer.concat([d.update(w), d.final()]);
    };
    expect(unwrap(wrapped).equals(cek)).toBe(true);
    wrapped[3]! ^= 1;
    expect(() => unwrap(wrapped)).toThrow();
  });

  it('refuses a KEK that is not 256 bits and key data that is not whole 64-bit blocks', () => {
    expect(() => aes256KeyWrap(Buffer.alloc(16), Buffer.alloc(32))).toThrow(TypeError);
    expect(() => aes256KeyWrap(Buffer.alloc(32), Buffer.alloc(20))).toThrow(TypeError);
  });
});
