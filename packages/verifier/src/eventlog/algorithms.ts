/** TPM 2.0 hash algorithms an event log may carry (TPM 2.0 Part 2, TPM_ALG_ID). */
export type EventLogBank = 'sha1' | 'sha256' | 'sha384' | 'sha512';

export const EVENTLOG_BANKS: readonly EventLogBank[] = ['sha1', 'sha256', 'sha384', 'sha512'];

export interface HashAlgorithmInfo {
  readonly bank: EventLogBank;
  readonly algId: number;
  readonly size: number;
}

const BY_ID = new Map<number, HashAlgorithmInfo>([
  [0x0004, { bank: 'sha1', algId: 0x0004, size: 20 }],
  [0x000b, { bank: 'sha256', algId: 0x000b, size: 32 }],
  [0x000c, { bank: 'sha384', algId: 0x000c, size: 48 }],
  [0x000d, { bank: 'sha512', algId: 0x000d, size: 64 }],
]);

const BY_BANK = new Map<EventLogBank, HashAlgorithmInfo>([...BY_ID.values()].map((a) => [a.bank, a]));

export function algorithmById(algId: number): HashAlgorithmInfo | undefined {
  return BY_ID.get(algId);
}

export function algorithmByBank(bank: EventLogBank): HashAlgorithmInfo {
  const info = BY_BANK.get(bank);
  if (info === undefined) throw new TypeError(`unknown bank ${String(bank)}`);
  return info;
}

export function isEventLogBank(value: string): value is EventLogBank {
  return BY_BANK.has(value as EventLogBank);
}
