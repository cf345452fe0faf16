/** Encoding of IMA checkpoints for backends that store bytes as text (Redis). */
import { StateError } from './errors.js';
import type { ImaCheckpointRecord } from '../attestation/tpm/ima-checkpoint-store.js';

const HEX64 = /^[0-9a-f]{64}$/;
const BANKS = new Set(['sha1', 'sha256', 'sha384', 'sha512']);
const DIGEST_BYTES: Record<string, number> = { sha1: 20, sha256: 32, sha384: 48, sha512: 64 };
/** Node keys of checkpoints: hex digests or node ids. */
const NODE_KEY = /^[A-Za-z0-9:._-]{1,200}$/;

export function checkImaNodeKey(node: string): void {
  // SECURITY: the key becomes a map or Redis key (key injection, unbounded keys).
  if (typeof node !== 'string' || !NODE_KEY.test(node)) throw new TypeError('IMA checkpoint node key must match ^[A-Za-z0-9:._-]{1,200}$');
}

export function encodeImaRecord(r: ImaCheckpointRecord): string {
  return JSON.stringify({
    policyKey: r.policyKey,
    resetCount: r.resetCount,
    bank: r.checkpoint.bank,
    nextIndex: r.checkpoint.nextIndex,
    pcr: Buffer.from(r.checkpoint.pcrValue).toString('hex'),
    prefixChars: r.prefixChars,
    prefixSha256: r.prefixSha256,
  });
}

/** Decode a stored checkpoint: STATE_CORRUPT when it does not have the expected shape. */
export function decodeImaRecord(json: string): ImaCheckpointRecord {
  const corrupt = (cause?: unknown): StateError => new StateError('STATE_CORRUPT', 'stored IMA checkpoint is malformed', { cause });
  if (json.length > 4096) throw corrupt();
  let v: Record<string, unknown>;
  try {
    v = JSON.parse(json) as Record<string, unknown>;
  } catch (cause) {
    throw corrupt(cause);
  }
  const bank = v['bank'];
  const pcr = v['pcr'];
  // SECURITY: a tampered checkpoint must not resume an appraisal from a forged PCR state; every
  // field is checked and any mismatch fails closed (STATE_CORRUPT), never read as "no checkpoint".
  if (
    typeof v !== 'object' || v === null ||
    typeof v['policyKey'] !== 'string' || !HEX64.test(v['policyKey']) ||
    !Number.isSafeInteger(v['resetCount']) || (v['resetCount'] as number) < 0 ||
    typeof bank !== 'string' || !BANKS.has(bank) ||
    !Number.isSafeInteger(v['nextIndex']) || (v['nextIndex'] as number) < 0 ||
    typeof pcr !== 'string' || pcr.length !== 2 * (DIGEST_BYTES[bank] ?? 0) || !/^[0-9a-f]*$/.test(pcr) ||
    !Number.isSafeInteger(v['prefixChars']) || (v['prefixChars'] as number) < 0 ||
    typeof v['prefixSha256'] !== 'string' || !HEX64.test(v['prefixSha256'])
  ) {
    throw corrupt();
  }
  return {
    policyKey: v['policyKey'],
    resetCount: v['resetCount'] as number,
    checkpoint: { bank: bank as ImaCheckpointRecord['checkpoint']['bank'], nextIndex: v['nextIndex'] as number, pcrValue: new Uint8Array(Buffer.from(pcr, 'hex')) },
    prefixChars: v['prefixChars'] as number,
    prefixSha256: v['prefixSha256'],
  };
}
