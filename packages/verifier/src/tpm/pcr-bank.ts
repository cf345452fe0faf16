/**
 * PCR banks and hash algorithms this verifier understands (TPM 2.0 Part 2 §6.3, TPM_ALG_ID;
 * TCG Algorithm Registry). Names double as node:crypto hash names.
 */
export type PcrBank = 'sha1' | 'sha256' | 'sha384';

/** Hash algorithms accepted for quote signatures (and hence for the quote's pcrDigest). */
export type QuoteHashAlgorithm = 'sha256' | 'sha384';

export const TPM_ALG_SHA1 = 0x0004;
export const TPM_ALG_SHA256 = 0x000b;
export const TPM_ALG_SHA384 = 0x000c;

interface BankInfo {
  readonly bank: PcrBank;
  readonly algId: number;
  /** Digest size in bytes. */
  readonly digestBytes: number;
}

const BANKS: readonly BankInfo[] = [
  { bank: 'sha1', algId: TPM_ALG_SHA1, digestBytes: 20 },
  { bank: 'sha256', algId: TPM_ALG_SHA256, digestBytes: 32 },
  { bank: 'sha384', algId: TPM_ALG_SHA384, digestBytes: 48 },
];

/** The bank with this TPM_ALG_ID, or undefined. */
export function pcrBankByAlgId(algId: number): PcrBank | undefined {
  return BANKS.find((b) => b.algId === algId)?.bank;
}

function info(bank: PcrBank): BankInfo {
  const found = BANKS.find((b) => b.bank === bank);
  if (found === undefined) throw new TypeError(`unknown PCR bank ${String(bank)}`);
  return found;
}

/** TPM_ALG_ID of a bank's hash. */
export function pcrBankAlgId(bank: PcrBank): number {
  return info(bank).algId;
}

/** Digest size in bytes of a bank's hash. */
export function pcrBankDigestBytes(bank: PcrBank): number {
  return info(bank).digestBytes;
}

export function isPcrBank(value: unknown): value is PcrBank {
  return typeof value === 'string' && BANKS.some((b) => b.bank === value);
}
