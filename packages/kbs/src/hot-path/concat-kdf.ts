import { createHash } from 'node:crypto';

/**
 * The Concat KDF of NIST SP 800-56A §5.8.1 with SHA-256, as JWA uses it for ECDH-ES (RFC 7518
 * §4.6.2): OtherInfo = AlgorithmID ‖ PartyUInfo ‖ PartyVInfo ‖ SuppPubInfo, each of the first
 * three prefixed with its 32-bit big-endian length, SuppPubInfo the key length in bits.
 */
export function concatKdf(z: Uint8Array, algorithmId: string, keyBits: number, apu: Uint8Array = EMPTY, apv: Uint8Array = EMPTY): Buffer {
  if (!Number.isInteger(keyBits) || keyBits <= 0 || keyBits % 8 !== 0) throw new TypeError('key length must be a positive number of bytes');
  const alg = Buffer.from(algorithmId, 'ascii');
  const otherInfo = Buffer.concat([u32(alg.length), alg, u32(apu.length), apu, u32(apv.length), apv, u32(keyBits)]);
  const out = Buffer.alloc(Math.ceil(keyBits / 256) * 32);
  for (let round = 1; round * 32 <= out.length; round++) {
    createHash('sha256').update(u32(round)).update(z).update(otherInfo).digest().copy(out, (round - 1) * 32);
  }
  return out.subarray(0, keyBits / 8);
}

const EMPTY = new Uint8Array(0);

function u32(n: number): Buffer {
  const b = Buffer.allocUnsafe(4);
  b.writeUInt32BE(n);
  return b;
}
