/** TPM_ALG_ID values used here (TCG Algorithm Registry, TPM 2.0 Part 2, 6.3). */
export const TPM_ALG = {
  RSA: 0x0001,
  SHA1: 0x0004,
  AES: 0x0006,
  SHA256: 0x000b,
  SHA384: 0x000c,
  SHA512: 0x000d,
  NULL: 0x0010,
  RSASSA: 0x0014,
  OAEP: 0x0017,
  ECDSA: 0x0018,
  ECDH: 0x0019,
  ECC: 0x0023,
  CFB: 0x0043,
} as const;

/** TPM_ECC_CURVE values (TPM 2.0 Part 2, 6.4). */
export const TPM_ECC_NIST_P256 = 0x0003;
export const TPM_ECC_NIST_P384 = 0x0004;

/** TPM_ST_ATTEST_QUOTE and TPM_GENERATED_VALUE (TPM 2.0 Part 2, 6.9 and 6.2). */
export const TPM_ST_ATTEST_QUOTE = 0x8018;
export const TPM_GENERATED_VALUE = 0xff544347;

export type PcrBank = 'sha1' | 'sha256' | 'sha384';

export const PCR_BANKS: readonly PcrBank[] = ['sha1', 'sha256', 'sha384'];

const BANK_ALG: Record<PcrBank, number> = { sha1: TPM_ALG.SHA1, sha256: TPM_ALG.SHA256, sha384: TPM_ALG.SHA384 };
const BANK_SIZE: Record<PcrBank, number> = { sha1: 20, sha256: 32, sha384: 48 };

export function bankAlg(bank: PcrBank): number {
  return BANK_ALG[bank];
}

export function bankDigestSize(bank: PcrBank): number {
  return BANK_SIZE[bank];
}

/** TPM_ALG_ID of a hash named as node:crypto (and @keyhold/verifier) name it. */
export function hashAlgOfName(name: string): number | undefined {
  switch (name) {
    case 'sha1':
      return TPM_ALG.SHA1;
    case 'sha256':
      return TPM_ALG.SHA256;
    case 'sha384':
      return TPM_ALG.SHA384;
    case 'sha512':
      return TPM_ALG.SHA512;
    default:
      return undefined;
  }
}

/** node:crypto hash name for a TPM hash algorithm, or undefined when not one we use. */
export function hashNameOfAlg(alg: number): 'sha1' | 'sha256' | 'sha384' | 'sha512' | undefined {
  switch (alg) {
    case TPM_ALG.SHA1:
      return 'sha1';
    case TPM_ALG.SHA256:
      return 'sha256';
    case TPM_ALG.SHA384:
      return 'sha384';
    case TPM_ALG.SHA512:
      return 'sha512';
    default:
      return undefined;
  }
}

/** Number of PCRs in a PC Client TPM bank (TCG PC Client Platform TPM Profile, 4.6). */
export const PCR_COUNT = 24;

export function assertPcrIndices(indices: readonly number[]): void {
  if (indices.length === 0) throw new TypeError('at least one PCR index is required');
  const seen = new Set<number>();
  for (const i of indices) {
    if (!Number.isInteger(i) || i < 0 || i >= PCR_COUNT) throw new TypeError(`PCR index out of range: ${i}`);
    if (seen.has(i)) throw new TypeError(`PCR index repeated: ${i}`);
    seen.add(i);
  }
}

/** A PCR selection for one bank as TPML_PCR_SELECTION wire bytes (TPM 2.0 Part 2, 10.9.7). */
export function pcrSelectionBytes(bank: PcrBank, indices: readonly number[]): Uint8Array {
  const select = new Uint8Array(3);
  for (const i of indices) select[i >> 3]! |= 1 << (i & 7);
  const out = new Uint8Array(4 + 2 + 1 + 3);
  const dv = new DataView(out.buffer);
  dv.setUint32(0, 1);
  dv.setUint16(4, bankAlg(bank));
  out[6] = 3;
  out.set(select, 7);
  return out;
}
