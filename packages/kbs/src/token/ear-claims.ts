import type { JWTPayload } from 'jose';
import type { TeePubkey } from '@keyhold/protocol';
import { EAR_PROFILE } from './ear-signer.js';

export type EarStatus = 'affirming' | 'warning' | 'contraindicated' | 'none';

/** AR4SI trustworthiness vector (draft-ietf-rats-ar4si): small integers per claim. */
export interface TrustworthinessVector {
  'instance-identity': number;
  configuration: number;
  executables: number;
  'file-system': number;
  hardware: number;
  'runtime-opaque': number;
  'storage-opaque': number;
  'sourced-data': number;
}

/** AR4SI tiers: 0 no claim; 2..31 affirming; 32..95 warning; 96..127 contraindicated. */
export const AR4SI = {
  NO_CLAIM: 0,
  AFFIRMING: 2,
  WARNING: 32,
  CONTRAINDICATED: 96,
  // hardware-specific meanings
  GENUINE_HARDWARE: 2,
  UNRECOGNIZED_HARDWARE: 97,
  // instance-identity
  TRUSTED_INSTANCE: 2,
  UNTRUSTED_INSTANCE: 96,
  // configuration / executables / file-system
  APPROVED: 2,
  UNSAFE: 96,
} as const;

export function emptyVector(): TrustworthinessVector {
  return {
    'instance-identity': 0,
    configuration: 0,
    executables: 0,
    'file-system': 0,
    hardware: 0,
    'runtime-opaque': 0,
    'storage-opaque': 0,
    'sourced-data': 0,
  };
}

/** The status an AR4SI vector implies: the worst tier of any claim; `none` when nothing was claimed. */
export function statusOfVector(v: TrustworthinessVector): EarStatus {
  const values = Object.values(v);
  if (values.some((x) => x >= 96)) return 'contraindicated';
  if (values.some((x) => x >= 32)) return 'warning';
  if (values.some((x) => x >= 2)) return 'affirming';
  return 'none';
}

export interface EarInput {
  tee: string;
  status: EarStatus;
  vector: TrustworthinessVector;
  policyId: string;
  teeClaims: Record<string, unknown>;
  reportDataHex: string;
  nonce: string;
  teePubkey: TeePubkey;
  initDataHex?: string;
  initDataClaims?: Record<string, unknown>;
  /** Keyhold additions (node identity, SPIFFE id) placed beside Trustee's claims. */
  extra?: Record<string, unknown>;
  /**
   * Why the verdict is not affirming, by names only (e.g. `pcr07 does not match the reference value
   * tpm_pcr07`): kept in `ear.veraison.policy-claims.reason` so a later denial can tell the client.
   */
  reason?: string;
  build: string;
}

/** Build Trustee-shaped EAR claims (PROTOCOL-NOTES §1). iat/exp/iss are set by the signer. */
export function earClaims(input: EarInput): JWTPayload {
  return {
    eat_profile: EAR_PROFILE,
    'ear.verifier-id': { developer: 'https://keyhold.dev', build: input.build },
    submods: {
      cpu0: {
        'ear.status': input.status,
        'ear.trustworthiness-vector': input.vector,
        'ear.appraisal-policy-id': input.policyId,
        ...(input.reason !== undefined ? { 'ear.veraison.policy-claims': { reason: input.reason.slice(0, MAX_REASON_CHARS) } } : {}),
        'ear.veraison.annotated-evidence': {
          [input.tee]: input.teeClaims,
          report_data: input.reportDataHex,
          runtime_data_claims: { nonce: input.nonce, 'tee-pubkey': input.teePubkey },
          init_data: input.initDataHex ?? null,
          init_data_claims: input.initDataClaims ?? null,
          ...(input.extra ?? {}),
        },
      },
    },
  };
}

/** Longest verdict reason a token carries. */
const MAX_REASON_CHARS = 300;

/** Read a value at a JSON pointer-like path of claims; undefined when absent. */
export function claimAt(claims: unknown, path: readonly string[]): unknown {
  let cur: unknown = claims;
  for (const k of path) {
    if (cur === null || typeof cur !== 'object') return undefined;
    cur = (cur as Record<string, unknown>)[k];
  }
  return cur;
}

/** Where the KBS finds the key to wrap to (Trustee). */
export const TEE_PUBKEY_PATH = ['submods', 'cpu0', 'ear.veraison.annotated-evidence', 'runtime_data_claims', 'tee-pubkey'] as const;
export const EAR_STATUS_PATH = ['submods', 'cpu0', 'ear.status'] as const;
