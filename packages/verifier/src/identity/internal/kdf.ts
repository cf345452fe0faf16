/** TPM key derivation functions (TPM 2.0 Part 1 §11.4.10). */
import { createHash, createHmac } from 'node:crypto';
import { concatBytes, u32be } from './byte-reader.js';

/** Labels are used with their terminating NUL (Part 1 §11.4.10.2: "the label ... including the 0"). */
function labelBytes(label: string): Uint8Array {
  return new Uint8Array(Buffer.from(`${label}\0`, 'latin1'));
}

function truncateBits(out: Uint8Array, bits: number): Uint8Array {
  const bytes = Math.ceil(bits / 8);
  const res = out.slice(0, bytes);
  const extra = bytes * 8 - bits;
  // Leading bits of the first byte are cleared when bits is not a multiple of 8.
  if (extra > 0) res[0] = (res[0] as number) & (0xff >> extra);
  return res;
}

/** KDFa: SP 800-108 counter mode with HMAC(hash) as PRF. */
export function kdfa(hash: string, key: Uint8Array, label: string, contextU: Uint8Array, contextV: Uint8Array, bits: number): Uint8Array {
  const lab = labelBytes(label);
  const parts: Uint8Array[] = [];
  let have = 0;
  for (let i = 1; have * 8 < bits; i++) {
    const block = createHmac(hash, key).update(concatBytes(u32be(i), lab, contextU, contextV, u32be(bits))).digest();
    parts.push(new Uint8Array(block));
    have += block.length;
  }
  return truncateBits(concatBytes(...parts), bits);
}

/** KDFe: SP 800-56A concatenation KDF with hash(counter || Z || label || partyU || partyV). */
export function kdfe(hash: string, z: Uint8Array, label: string, partyU: Uint8Array, partyV: Uint8Array, bits: number): Uint8Array {
  const lab = labelBytes(label);
  const parts: Uint8Array[] = [];
  let have = 0;
  for (let i = 1; have * 8 < bits; i++) {
    const block = createHash(hash).update(concatBytes(u32be(i), z, lab, partyU, partyV)).digest();
    parts.push(new Uint8Array(block));
    have += block.length;
  }
  return truncateBits(concatBytes(...parts), bits);
}
