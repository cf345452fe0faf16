import { describe, expect, it } from 'vitest';
import { encryptA256gcm } from './a256gcm.js';

describe('encryptA256gcm', () => {
  it('matches RFC 7516 Appendix A.1 (A.1.6 content encryption: CEK, IV, AAD → ciphertext and tag)', () => {
    const cek = Buffer.from([177, 161, 244, 128, 84, 143, 225, 115, 63, 180, 3, 255, 107, 154, 212, 246, 138, 7, 110, 91, 112, 46, 34, 105, 47, 130, 203, 46, 122, 234, 64, 252]);
    const iv = Buffer.from([227, 197, 117, 252, 2, 219, 233, 68, 180, 225, 77, 219]);
    const aad = 'eyJhbGciOiJSU0EtT0FFUCIsImVuYyI6IkEyNTZHQ00ifQ';
    const sealed = encryptA256gcm(cek, Buffer.from('The true sign of intelligence is not knowledge but imagination.'), aad, iv);
    expect(sealed.ciphertext.toString('base64url')).toBe('5eym8TW_c8SuK0ltJ3rpYIzOeDQz7TALvtu6UG9oMo4vpzs9tX_EFShS8iB7j6jiSdiwkIr3ajwQzaBtQD_A');
    expect(sealed.tag.toString('base64url')).toBe('XFBoMYUZodetZdvTiFvSkQ');
  });

  it('draws a fresh 96-bit IV for every message', () => {
    const a = encryptA256gcm(Buffer.alloc(32), Buffer.from('x'), 'h');
    const b = encryptA256gcm(Buffer.alloc(32), Buffer.from('x'), 'h');
    expect(a.iv.length).toBe(12);
    expect(a.iv.equals(b.iv)).toBe(false);
  });

  it('refuses keys and IVs of the wrong size', () => {
    expect(() => encryptA256gcm(Buffer.alloc(16), Buffer.from('x'), 'h')).toThrow(TypeError);
    expect(() => encryptA256gcm(Buffer.alloc(32), Buffer.from('x'), 'h', Buffer.alloc(16))).toThrow(TypeError);
  });
});
