/** TPM_ALG_ID values used by public areas (TPM 2.0 Part 2 §6.3 / TCG Algorithm Registry). */
export const TPM_ALG = {
  RSA: 0x0001,
  SHA1: 0x0004,
  HMAC: 0x0005,
  AES: 0x0006,
  MGF1: 0x0007,
  KEYEDHASH: 0x0008,
  XOR: 0x000a,
  SHA256: 0x000b,
  SHA384: 0x000c,
  SHA512: 0x000d,
  NULL: 0x0010,
  SM3_256: 0x0012,
  SM4: 0x0013,
  RSASSA: 0x0014,
  RSAES: 0x0015,
  RSAPSS: 0x0016,
  OAEP: 0x0017,
  ECDSA: 0x0018,
  ECDH: 0x0019,
  ECDAA: 0x001a,
  SM2: 0x001b,
  ECSCHNORR: 0x001c,
  ECMQV: 0x001d,
  KDF1_SP800_56A: 0x0020,
  KDF2: 0x0021,
  KDF1_SP800_108: 0x0022,
  ECC: 0x0023,
  SYMCIPHER: 0x0025,
  CAMELLIA: 0x0026,
  CTR: 0x0040,
  OFB: 0x0041,
  CBC: 0x0042,
  CFB: 0x0043,
  ECB: 0x0044,
} as const;

export type TpmHashName = 'sha1' | 'sha256' | 'sha384' | 'sha512' | 'sm3_256';

const HASHES: ReadonlyMap<number, { name: TpmHashName; size: number }> = new Map([
  [TPM_ALG.SHA1, { name: 'sha1', size: 20 }],
  [TPM_ALG.SHA256, { name: 'sha256', size: 32 }],
  [TPM_ALG.SHA384, { name: 'sha384', size: 48 }],
  [TPM_ALG.SHA512, { name: 'sha512', size: 64 }],
  [TPM_ALG.SM3_256, { name: 'sm3_256', size: 32 }],
]);

export function hashInfo(alg: number): { name: TpmHashName; size: number } | undefined {
  return HASHES.get(alg);
}

export function hashAlgId(name: TpmHashName): number {
  for (const [id, h] of HASHES) if (h.name === name) return id;
  throw new TypeError(`unknown hash ${name}`);
}

export type TpmEccCurve = 'NIST_P192' | 'NIST_P224' | 'NIST_P256' | 'NIST_P384' | 'NIST_P521' | 'BN_P256' | 'BN_P638' | 'SM2_P256';

const CURVES: ReadonlyMap<number, { name: TpmEccCurve; size: number }> = new Map([
  [0x0001, { name: 'NIST_P192', size: 24 }],
  [0x0002, { name: 'NIST_P224', size: 28 }],
  [0x0003, { name: 'NIST_P256', size: 32 }],
  [0x0004, { name: 'NIST_P384', size: 48 }],
  [0x0005, { name: 'NIST_P521', size: 66 }],
  [0x0010, { name: 'BN_P256', size: 32 }],
  [0x0011, { name: 'BN_P638', size: 80 }],
  [0x0020, { name: 'SM2_P256', size: 32 }],
]);

export function curveInfo(id: number): { name: TpmEccCurve; size: number } | undefined {
  return CURVES.get(id);
}
