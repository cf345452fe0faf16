import { createHash } from 'node:crypto';
import { jcs } from './jcs.js';
import type { TeePubkey } from './messages.js';

/** Hash algorithms a challenge may select for the runtime-data binding. */
export const BINDING_HASH_ALGORITHMS = ['sha256', 'sha384', 'sha512'] as const;
export type BindingHashAlgorithm = (typeof BINDING_HASH_ALGORITHMS)[number];
export const DEFAULT_BINDING_HASH: BindingHashAlgorithm = 'sha384';

/** Size of the qualifying data a TPM quote carries for Trustee's `tpm` evidence. */
export const TPM_REPORT_DATA_BYTES = 32;

export interface RuntimeDataBindingInput {
  nonce: string;
  teePubkey: TeePubkey;
  /** Trustee's `additional_evidence` string; "" when there is none. */
  additionalEvidence?: string;
}

/** RFC 8785 (JCS) text of the object that an attester binds into its evidence. */
export function runtimeDataCanonicalJson(input: RuntimeDataBindingInput): string {
  return jcs({
    'additional-evidence': input.additionalEvidence ?? '',
    nonce: input.nonce,
    'tee-pubkey': input.teePubkey,
  });
}

/** report_data = HASH(JCS(runtime data)), HASH = SHA-384 unless the challenge selected another. */
export function runtimeDataDigest(input: RuntimeDataBindingInput, alg: BindingHashAlgorithm = DEFAULT_BINDING_HASH): Uint8Array {
  return new Uint8Array(createHash(alg).update(runtimeDataCanonicalJson(input), 'utf8').digest());
}

/** Truncate or zero-pad a digest to `size` bytes (the TPM quote's qualifying data). */
export function fitReportData(digest: Uint8Array, size = TPM_REPORT_DATA_BYTES): Uint8Array {
  const out = new Uint8Array(size);
  out.set(digest.subarray(0, size));
  return out;
}

/** The TPM quote's qualifying data for this runtime data: the binding digest fitted to 32 bytes. */
export function tpmQualifyingData(input: RuntimeDataBindingInput, alg: BindingHashAlgorithm = DEFAULT_BINDING_HASH): Uint8Array {
  return fitReportData(runtimeDataDigest(input, alg));
}

/** The hash algorithm a challenge selected (`extra-params.selected-hash-algorithm`), else the default. */
export function selectedBindingHash(extraParams: unknown): BindingHashAlgorithm {
  if (extraParams !== null && typeof extraParams === 'object') {
    const v = (extraParams as Record<string, unknown>)['selected-hash-algorithm'];
    if (typeof v === 'string') {
      const lower = v.toLowerCase();
      if ((BINDING_HASH_ALGORITHMS as readonly string[]).includes(lower)) return lower as BindingHashAlgorithm;
    }
  }
  return DEFAULT_BINDING_HASH;
}
