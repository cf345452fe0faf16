import { createPrivateKey, diffieHellman } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { concatKdf } from './concat-kdf.js';

// RFC 7518 Appendix C ("Example ECDH-ES Key Agreement Computation"): Alice's ephemeral key, Bob's key,
// apu "Alice", apv "Bob", direct key agreement for A128GCM (128 bits).
const ALICE = { kty: 'EC', crv: 'P-256', x: 'gI0GAILBdu7T53akrFmMyGcsF3n5dO7MmwNBHKW5SV0', y: 'SLW_xSffzlPWrHEVI30DHM_4egVwt3NQqeUD7nMFpps', d: '0_NxaRPUMQoAJt50Gz8YiTr8gRTwyEaCumd-MToTmIo' };
const BOB = { kty: 'EC', crv: 'P-256', x: 'weNJy2HscCSM6AEDTDg04biOvhFhyyWvOHQfeF_PxMQ', y: 'e8lnCO-AlStT-NJVX-crhB7QRYhiix03illJOVAOyck', d: 'VEmDZpDXXK8p8N0Cndsxs924q6nS1RXFASRl6BfUqdw' };
const Z = [158, 86, 217, 29, 129, 113, 53, 211, 114, 131, 66, 131, 191, 132, 38, 156, 251, 49, 110, 163, 218, 128, 106, 72, 246, 218, 167, 121, 140, 254, 144, 196];

describe('concatKdf', () => {
  it('derives RFC 7518 Appendix C’s key from its Z (node:crypto ECDH gives that Z from both sides)', () => {
    const alice = createPrivateKey({ key: ALICE, format: 'jwk' });
    const bob = createPrivateKey({ key: BOB, format: 'jwk' });
    const z = diffieHellman({ privateKey: alice, publicKey: bob });
    expect([...z]).toEqual(Z);
    expect([...diffieHellman({ privateKey: bob, publicKey: alice })]).toEqual(Z);
    const key = concatKdf(z, 'A128GCM', 128, Buffer.from('Alice'), Buffer.from('Bob'));
    expect(key.toString('base64url')).toBe('VqqN6vgjbSBcIijNcacQGg');
  });

  it('refuses key lengths that are not whole bytes', () => {
    expect(() => concatKdf(Buffer.alloc(32), 'A256KW', 0)).toThrow(TypeError);
    expect(() => concatKdf(Buffer.alloc(32), 'A256KW', 12)).toThrow(TypeError);
  });
});
