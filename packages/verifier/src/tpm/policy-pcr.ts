/**
 * TPM2_PolicyPCR policy digests computed in TypeScript (TPM 2.0 Part 3 §23.7), so a verifier can
 * tell which PCR state an object's authPolicy demands without asking a TPM:
 *
 *   policyDigest' = H(policyDigest ‖ TPM_CC_PolicyPCR ‖ TPML_PCR_SELECTION ‖ H(PCR values))
 *
 * H is the policy session's hash, which must be the object's nameAlg for the policy to satisfy its
 * authPolicy; the PCR values are concatenated in ascending index order (PCRComputeCurrentDigest).
 */
import { createHash } from 'node:crypto';
import { pcrBankAlgId, pcrBankDigestBytes, type PcrBank } from './pcr-bank.js';

/** TPM_CC_PolicyPCR (Part 2 §6.5.2). */
export const TPM_CC_POLICY_PCR = 0x0000017f;
/** sizeofSelect of a PC Client TPM (24 PCRs), as tpm2-tss and tpm2-tools marshal selections. */
const SIZEOF_SELECT = 3;
const MAX_PCR_INDEX = SIZEOF_SELECT * 8 - 1;

export type PolicyHashAlgorithm = 'sha256' | 'sha384' | 'sha512';

export interface PolicyPcrInput {
  /** The policy session's hash (the object's nameAlg). */
  readonly hashAlg: PolicyHashAlgorithm;
  /** The PCR bank the policy selects. */
  readonly bank: PcrBank;
  /** The PCR values, index → digest; every selected index, none other. */
  readonly values: ReadonlyMap<number, Uint8Array>;
  /** The policy digest before this assertion; all zeros (a fresh session) by default. */
  readonly previous?: Uint8Array;
}

/** TPML_PCR_SELECTION with one bank (count 1, hashAlg, sizeofSelect 3, bitmap). */
export function pcrSelectionWire(bank: PcrBank, indices: readonly number[]): Uint8Array {
  const out = new Uint8Array(4 + 2 + 1 + SIZEOF_SELECT);
  const dv = new DataView(out.buffer);
  dv.setUint32(0, 1);
  dv.setUint16(4, pcrBankAlgId(bank));
  out[6] = SIZEOF_SELECT;
  for (const i of indices) out[7 + (i >> 3)]! |= 1 << (i & 7);
  return out;
}

/** The policy digest after TPM2_PolicyPCR over `values` (programmer misuse throws TypeError). */
export function policyPcrDigest(input: PolicyPcrInput): Uint8Array {
  const size = createHash(input.hashAlg).digest().length;
  const previous = input.previous ?? new Uint8Array(size);
  if (previous.length !== size) throw new TypeError('policyPcrDigest: previous digest has the wrong size');
  const indices = [...input.values.keys()].sort((a, b) => a - b);
  if (indices.length === 0) throw new TypeError('policyPcrDigest: at least one PCR is required');
  const pcrHash = createHash(input.hashAlg);
  for (const i of indices) {
    if (!Number.isInteger(i) || i < 0 || i > MAX_PCR_INDEX) throw new TypeError(`policyPcrDigest: PCR index ${i} out of range`);
    const v = input.values.get(i) as Uint8Array;
    if (v.length !== pcrBankDigestBytes(input.bank)) throw new TypeError(`policyPcrDigest: PCR ${i} value has the wrong size`);
    pcrHash.update(v);
  }
  const cc = new Uint8Array(4);
  new DataView(cc.buffer).setUint32(0, TPM_CC_POLICY_PCR);
  return new Uint8Array(
    createHash(input.hashAlg).update(previous).update(cc).update(pcrSelectionWire(input.bank, indices)).update(pcrHash.digest()).digest(),
  );
}
