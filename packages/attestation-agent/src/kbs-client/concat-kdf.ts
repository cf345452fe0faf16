/**
 * The Concat KDF of JWA ECDH-ES (RFC 7518 §4.6.2; NIST SP 800-56A rev. 3 §5.8.2.1, single-step
 * KDF with SHA-256), for unwrapping when the ECDH shared secret comes from a TPM (TPM2_ECDH_ZGen)
 * rather than from a private key in this process.
 */
import { createHash } from 'node:crypto';

function u32(v: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(v >>> 0);
  return b;
}

function lengthPrefixed(b: Uint8Array): Buffer {
  return Buffer.concat([u32(b.length), b]);
}

export interface ConcatKdfInput {
  /** Z: the ECDH shared secret (x coordinate). */
  readonly sharedSecret: Uint8Array;
  /** `alg` for key agreement with key wrapping (e.g. `ECDH-ES+A256KW`), or `enc` for direct agreement. */
  readonly algorithmId: string;
  /** Bits of key material wanted (256 for A256KW / A256GCM). */
  readonly keyBits: number;
  /** PartyUInfo / PartyVInfo: the decoded `apu` / `apv` header members (empty when absent). */
  readonly partyUInfo?: Uint8Array;
  readonly partyVInfo?: Uint8Array;
}

/** Derived key material: SHA-256(counter ‖ Z ‖ OtherInfo) for as many rounds as `keyBits` needs. */
export function concatKdf(input: ConcatKdfInput): Uint8Array {
  if (!Number.isInteger(input.keyBits) || input.keyBits <= 0 || input.keyBits % 8 !== 0 || input.keyBits > 512) {
    throw new TypeError('concatKdf: keyBits must be a multiple of 8 in 8..512');
  }
  const otherInfo = Buffer.concat([
    lengthPrefixed(Buffer.from(input.algorithmId, 'ascii')),
    lengthPrefixed(input.partyUInfo ?? new Uint8Array(0)),
    lengthPrefixed(input.partyVInfo ?? new Uint8Array(0)),
    u32(input.keyBits),
  ]);
  const bytes = input.keyBits / 8;
  const out = new Uint8Array(Math.ceil(bytes / 32) * 32);
  for (let round = 1; (round - 1) * 32 < bytes; round++) {
    out.set(createHash('sha256').update(u32(round)).update(input.sharedSecret).update(otherInfo).digest(), (round - 1) * 32);
  }
  const key = out.slice(0, bytes);
  out.fill(0);
  return key;
}
